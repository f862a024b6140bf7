/**
 * Estimated spend, computed in the browser from Kling v2.1 Pro's published price on fal, until the
 * API exposes its own `estimatedCost` field; then the console should read that field instead and
 * this module can go. Everything that shows a price calls these functions, so that is one switch.
 */
export const KLING_V21_PRO_PRICE = {
  /** A 5 s video. */
  baseUsd: 0.49,
  baseSeconds: 5,
  /** Each second beyond 5 (a 10 s video is 0.49 + 5 × 0.098 = $0.98). */
  extraSecondUsd: 0.098,
} as const;

/** Price of one generated video of this length, in US dollars. */
export function estimateVideoCostUsd(durationSeconds: number): number {
  const { baseUsd, baseSeconds, extraSecondUsd } = KLING_V21_PRO_PRICE;
  return baseUsd + Math.max(0, durationSeconds - baseSeconds) * extraSecondUsd;
}

/** Price of generating each of these videos once (a retry generates, and is billed, again). */
export function estimateBatchCostUsd(durationsSeconds: readonly number[]): number {
  return durationsSeconds.reduce((sum, seconds) => sum + estimateVideoCostUsd(seconds), 0);
}

const usd = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 2 });

export const formatUsd = (amount: number) => usd.format(amount);
