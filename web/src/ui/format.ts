/*
 * How the console writes amounts and lengths. Prices come from the API (`estimatedCost`, the
 * server's price table for the model it runs), so the console only formats them.
 */

const usd = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 2 });

/** "$1.96", or "unknown" when the API has no price for its model (estimatedCost null). */
export const formatUsd = (amount: number | null | undefined) => (amount === null || amount === undefined ? 'unknown' : usd.format(amount));

const seconds = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

/** "15 s", "14.9 s". */
export const formatSeconds = (value: number) => `${seconds.format(value)} s`;

/**
 * "about 3 min left" until an estimated completion (rounded up, never less than a minute), or
 * null when there is no estimate.
 */
export function timeLeft(estimatedCompletionAt: string | null | undefined, now: number): string | null {
  if (!estimatedCompletionAt) return null;
  const minutes = Math.max(1, Math.ceil((Date.parse(estimatedCompletionAt) - now) / 60_000));
  return `about ${minutes} min left`;
}
