import { randomBytes } from 'node:crypto';
import type { GenerationQueue } from '../queue/generation-queue.ts';
import type { RedisClient } from '../redis.ts';
import type { Logger } from '../logger.ts';
import type { RateLimiter } from '../graphql/hardening.ts';
import { within } from '../within.ts';

/**
 * A sliding window: KEYS[1] holds the account's allowed mutations of the last ARGV[2] ms (score =
 * Redis' clock in ms, so API instances with skewed clocks agree). Returns 0 when this one is
 * allowed (and recorded), else the ms until the oldest leaves the window. A refused call records
 * nothing, so retrying when told frees a slot.
 */
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
return math.max(1, oldest + window - now)
`;

/** How long a mutation waits for the limit's answer before it is let through. */
export const CHECK_TIMEOUT_MS = 1_000;

type LimiterRedis = RedisClient & { segueRateTake(key: string, member: string, windowMs: number, limit: number): Promise<number> };

/**
 * At most `perWindow` mutations per account in any `windowMs` (a minute in production), counted
 * in Redis so every API instance shares them. A sliding window, not one per wall-clock minute: a
 * fixed window let twice the limit through around a minute's turn, and told a client refused at
 * 0:59 to come back in 1 s.
 *
 * Redis holds up to `perWindow` short entries per account active in the last window.
 *
 * If Redis does not answer within `CHECK_TIMEOUT_MS` (down, or up and silent), mutations are let
 * through (and logged): PostgreSQL still guards the data, and refusing all writes during a Redis
 * outage would be worse than a few extra ones.
 */
export function redisRateLimiter(
  jobs: () => GenerationQueue,
  prefix: string,
  perWindow: number,
  logger: Logger,
  windowMs = 60_000,
): RateLimiter | null {
  if (perWindow <= 0) return null;
  return {
    async take(accountId: string) {
      // One key per script call: any slot of a Redis Cluster will do.
      const key = `${prefix}:ratelimit:mutations:${accountId}`;
      try {
        const queue = jobs();
        const take = async () => {
          await queue.ready(CHECK_TIMEOUT_MS);
          if (!('segueRateTake' in queue.redis)) queue.redis.defineCommand('segueRateTake', { numberOfKeys: 1, lua: TAKE });
          return (queue.redis as LimiterRedis).segueRateTake(key, randomBytes(8).toString('base64url'), windowMs, perWindow);
        };
        // One bound for the whole check: waiting for the connection and the script's answer.
        const waitMs = Number(await within(take(), CHECK_TIMEOUT_MS, "Redis did not answer the rate limit's check"));
        return waitMs > 0 ? Math.ceil(waitMs / 1000) : 0;
      } catch (err) {
        logger.warn({ err }, 'rate limiter unavailable; letting the mutation through');
        return 0;
      }
    },
  };
}
