import { Backoffs } from 'bullmq';
import { isProviderError } from '../providers/provider.ts';

/**
 * BullMQ's own exponential backoff with jitter (delay · 2^(attempt-1), randomised down by up to
 * half), never shorter than a Retry-After the provider asked for.
 */
export function generationBackoff(baseDelayMs: number) {
  const exponential = Backoffs.builtinStrategies.exponential!(baseDelayMs, 0.5);
  return (attemptsMade: number, _type: string | undefined, error?: Error) => {
    const retryAfter = isProviderError(error) ? (error.options.retryAfterMs ?? 0) : 0;
    return Math.max(exponential(attemptsMade, _type, error) as number, retryAfter);
  };
}
