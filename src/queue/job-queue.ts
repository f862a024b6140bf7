import { Queue, type JobsOptions } from 'bullmq';
import type { Config } from '../config.ts';
import type { RedisClient } from '../redis.ts';
import { within } from '../within.ts';

/** Failed jobs stay this long for the dashboard (retry / clean), then go. */
const KEEP_FAILED_S = 7 * 24 * 3600;

/**
 * What Segue's queues (generation, copy, media) share: a BullMQ queue under the deployment's
 * prefix on the process's producer connection, one job per id (adding it again while it exists
 * changes nothing), finished jobs removed and failed ones kept a week.
 */
export abstract class JobQueue<Data> {
  readonly queue: Queue<Data>;
  private waiting: Promise<void> | null = null;

  constructor(
    name: string,
    protected readonly config: Config,
    /** The producer connection (fails fast while Redis is away: nothing piles up in memory). */
    readonly redis: RedisClient,
  ) {
    // No version check (an INFO on first use): its answer is kept for the queue's life, so one
    // that timed out (the producer's commands give up after 5 s) would fail every later call until
    // a restart. The workers' own connections still check the version when they start. Without
    // it BullMQ takes Redis for 5.0, which only changes how getState and isWaiting/isActive read
    // (a Lua script instead of LPOS), neither of which Segue calls.
    this.queue = new Queue<Data>(name, { connection: redis, prefix: config.queuePrefix, skipVersionCheck: true });
    // Redis being down surfaces on each call (enqueue, /ready); no need for BullMQ to print it too.
    this.queue.on('error', () => undefined);
  }

  /** Options of a job with this id; `extra` adds attempts, backoff, priority, delay. */
  protected jobOptions(jobId: string, extra: JobsOptions): JobsOptions {
    return { jobId, removeOnComplete: true, removeOnFail: { age: KEEP_FAILED_S }, ...extra };
  }

  /**
   * The producer connection refuses commands while disconnected (fail fast instead of queueing
   * them in memory); wait briefly for it to come up at start. Each caller waits its own
   * `timeoutMs` (the rate limit's check 1 s, an enqueue 5 s) on one shared wait for the connection.
   */
  async ready(timeoutMs = 5_000): Promise<void> {
    if (this.redis.status === 'ready') return;
    if (this.redis.status === 'wait') this.redis.connect().catch(() => undefined);
    // One listener for every caller of a burst, not one per request.
    this.waiting ??= new Promise<void>((resolve) => this.redis.once('ready', () => resolve())).finally(() => {
      this.waiting = null;
    });
    return within(this.waiting, timeoutMs, `Redis is not reachable (${this.redis.status})`);
  }

  close() {
    return this.queue.close();
  }
}
