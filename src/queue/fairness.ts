import type { RedisClient } from '../redis.ts';

/**
 * Fair share on open BullMQ: job priorities as a virtual clock (start-time fair queuing).
 *
 * The clock is the priority of the last job that claimed a fal slot. An account's next items get
 * priorities right after max(clock, the account's last), so when several accounts wait, the
 * lowest priorities (served first) take one item from each account per round, FIFO within an
 * account: a 1,000-item batch does not starve someone else's single video, which starts within one
 * slot turnover. When nothing waits the clock restarts at 0, which keeps priorities far below
 * BullMQ's ceiling (2^21); a queue that never drains for ~2 million rounds degrades to FIFO.
 */
export const MAX_PRIORITY = 2_097_152;

const RESERVE = `
local clock = tonumber(redis.call('GET', KEYS[1]) or '0')
if redis.call('ZCARD', KEYS[3]) == 0 and redis.call('LLEN', KEYS[4]) == 0 and redis.call('ZCARD', KEYS[5]) == 0 then
  redis.call('SET', KEYS[1], 0)
  redis.call('DEL', KEYS[2])
  clock = 0
end
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local base = math.max(clock, last)
redis.call('HSET', KEYS[2], ARGV[1], base + tonumber(ARGV[2]))
return base
`;

const ADVANCE = `
local p = tonumber(ARGV[1])
if p > tonumber(redis.call('GET', KEYS[1]) or '0') then redis.call('SET', KEYS[1], p) end
return 1
`;

type FairRedis = RedisClient & {
  segueFairReserve(clock: string, accounts: string, prioritized: string, wait: string, delayed: string, accountId: string, n: number): Promise<number>;
  segueFairAdvance(clock: string, priority: number): Promise<number>;
};

export interface FairnessKeys {
  clock: string;
  accounts: string;
  prioritized: string;
  wait: string;
  delayed: string;
}

export class FairShare {
  private readonly redis: FairRedis;
  constructor(
    redis: RedisClient,
    private readonly keys: FairnessKeys,
  ) {
    if (!('segueFairReserve' in redis)) {
      redis.defineCommand('segueFairReserve', { numberOfKeys: 5, lua: RESERVE });
      redis.defineCommand('segueFairAdvance', { numberOfKeys: 1, lua: ADVANCE });
    }
    this.redis = redis as FairRedis;
  }

  /**
   * Priorities for an account's next `n` items, in their order. The script's five keys all start
   * with QUEUE_PREFIX, whose hash tag keeps them in one slot on a Redis Cluster.
   */
  async reserve(accountId: string, n: number): Promise<number[]> {
    const k = this.keys;
    const base = Number(await this.redis.segueFairReserve(k.clock, k.accounts, k.prioritized, k.wait, k.delayed, accountId, n));
    return Array.from({ length: n }, (_, i) => Math.min(base + i + 1, MAX_PRIORITY));
  }

  private pending = 0;
  private flushing: Promise<void> | null = null;

  /**
   * Called when a job claims its fal slot (not when it starts: a staged job waits for its turn):
   * the clock follows the highest priority claimed (Lua keeps it from running backwards).
   * Coalesced per process: a burst of claims in one tick is one Redis call.
   */
  started(priority: number | undefined): Promise<void> {
    if (priority && priority > this.pending) this.pending = priority;
    this.flushing ??= (async () => {
      await new Promise((r) => setImmediate(r));
      const value = this.pending;
      this.pending = 0;
      this.flushing = null;
      if (value > 0) await this.redis.segueFairAdvance(this.keys.clock, value);
    })();
    return this.flushing;
  }
}
