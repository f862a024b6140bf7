import type { GenerationQueue } from '../queue/generation-queue.ts';
import type { Logger } from '../logger.ts';
import type { RateLimiter } from '../graphql/hardening.ts';

/**
 * A fixed one-minute window per account in Redis (INCR + PEXPIRE), shared by every API instance.
 * If Redis does not answer, mutations are let through (and logged): PostgreSQL still guards the
 * data, and refusing all writes during a Redis outage would be worse than a few extra ones.
 */
export function redisRateLimiter(jobs: () => GenerationQueue, prefix: string, perMinute: number, logger: Logger): RateLimiter | null {
  if (perMinute <= 0) return null;
  return {
    async take(accountId: string) {
      const window = Math.floor(Date.now() / 60_000);
      const key = `${prefix}:ratelimit:mutations:${accountId}:${window}`;
      try {
        const queue = jobs();
        await queue.ready(1_000);
        const [[, count]] = (await queue.redis.multi().incr(key).pexpire(key, 61_000).exec()) as [[null, number], unknown];
        if (count <= perMinute) return 0;
        return Math.max(1, Math.ceil(((window + 1) * 60_000 - Date.now()) / 1000));
      } catch (err) {
        logger.warn({ err }, 'rate limiter unavailable; letting the mutation through');
        return 0;
      }
    },
  };
}
