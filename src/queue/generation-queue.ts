import type { JobsOptions } from 'bullmq';
import { Cluster } from 'ioredis';
import type { RedisClient } from '../redis.ts';
import { stagedJobs, type Config } from '../config.ts';
import type { QueueDepths, QueueGauges, RunJobs, WorkerInfo } from '../domain/ports.ts';
import { FairShare } from './fairness.ts';
import { JobQueue } from './job-queue.ts';
import { parseClientList, workersOf } from './workers-online.ts';

export const GENERATION_QUEUE = 'generation';

/** Jobs carry ids, rows carry state: a job names the transition and its run, nothing else. */
export interface GenerationJobData {
  transitionId: string;
  run: number;
  accountId: string;
}

/** One job per (transition, run): adding it twice is a no-op while it exists (no ':' allowed). */
export const generationJobId = (transitionId: string, run: number) => `t-${transitionId}-r${run}`;

export type Enqueueable = Pick<GenerationJobData, 'accountId' | 'run'> & { id: string };

/** The custom backoff type the worker implements (exponential with jitter, honouring Retry-After). */
export const BACKOFF_TYPE = 'segue';

export class GenerationQueue extends JobQueue<GenerationJobData> implements RunJobs, QueueGauges {
  readonly fairness: FairShare;

  /** `redis` is the producer connection, also used for the fair-share scripts and the reconciler. */
  constructor(config: Config, redis: RedisClient) {
    super(GENERATION_QUEUE, config, redis);
    const keys = this.queue.keys;
    this.fairness = new FairShare(redis, {
      clock: `${config.queuePrefix}:${GENERATION_QUEUE}:fair:clock`,
      accounts: `${config.queuePrefix}:${GENERATION_QUEUE}:fair:accounts`,
      prioritized: keys.prioritized!,
      wait: keys.wait!,
      delayed: keys.delayed!,
    });
  }

  private generationOptions(transitionId: string, run: number, priority: number): JobsOptions {
    return this.jobOptions(generationJobId(transitionId, run), {
      priority,
      attempts: this.config.fal.maxRetries + 1,
      backoff: { type: BACKOFF_TYPE },
      removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
    });
  }

  /**
   * Adds one job per transition, in the given order. Each account's items get fair-share
   * priorities (FIFO within the account); `urgent` items (already holding a fal request) go first.
   */
  async enqueue(items: readonly Enqueueable[], options: { urgent?: boolean } = {}): Promise<void> {
    if (items.length === 0) return;
    await this.ready();
    const byAccount = new Map<string, Enqueueable[]>();
    for (const item of items) byAccount.set(item.accountId, [...(byAccount.get(item.accountId) ?? []), item]);
    const jobs: Array<{ name: string; data: GenerationJobData; opts: JobsOptions }> = [];
    for (const [accountId, list] of byAccount) {
      const priorities = options.urgent ? list.map(() => 1) : await this.fairness.reserve(accountId, list.length);
      list.forEach((item, i) =>
        jobs.push({
          name: 'generate',
          data: { transitionId: item.id, run: item.run, accountId },
          opts: this.generationOptions(item.id, item.run, priorities[i]!),
        }),
      );
    }
    await this.queue.addBulk(jobs);
  }

  /**
   * Caps active jobs across every worker process: the fal requests in flight (FAL_CONCURRENCY, `n`),
   * and the staged jobs beyond them, whose rows and images are ready and whose claims wait for
   * the next free slot (claims.ts), so a slot goes to the next submit without a queue round trip.
   * The cap on fal itself is the ledger's, which staged jobs never pass.
   */
  async setFalConcurrency(n: number) {
    await this.ready();
    return this.queue.setGlobalConcurrency(n + stagedJobs(n));
  }

  /**
   * Wakes a parked job now (it waits in the delayed set for a lost submit's answer, a slot, ...)
   * because what it waits for has happened. A job that is not parked is left alone.
   */
  async wake(transitionId: string, run: number) {
    await this.ready();
    const job = await this.queue.getJob(generationJobId(transitionId, run));
    if (job && (await job.isDelayed())) await job.promote().catch(() => undefined);
  }

  /**
   * The workers connected now, from their named connections (CLIENT LIST). On a cluster, from
   * every master: a worker's named connection may be on any node, and BullMQ's own getWorkers
   * reads only the node that lists the most of them.
   */
  async onlineWorkers(): Promise<WorkerInfo[]> {
    if (!(this.redis instanceof Cluster)) return workersOf(await this.queue.getWorkers());
    await this.ready();
    const name = `${this.config.queuePrefix}:${Buffer.from(GENERATION_QUEUE).toString('base64')}`;
    const lists = await Promise.all(this.redis.nodes('master').map((node) => node.client('LIST') as Promise<string>));
    return workersOf(
      lists
        .flatMap(parseClientList)
        .filter((client) => client.name === name || client.name?.startsWith(`${name}:w:`))
        .map((client) => ({ ...client, rawname: client.name! })),
    );
  }

  async depths(): Promise<QueueDepths> {
    const counts = await this.queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed');
    return {
      // Prioritized jobs are waiting too (every generation job has a fair-share priority).
      waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
      active: counts.active ?? 0,
      delayed: counts.delayed ?? 0,
      failed: counts.failed ?? 0,
    };
  }

  async removeWaiting(transitionId: string, run: number) {
    // One command; an active (locked) job is left alone: its processor sees the row changed and stops.
    await this.queue.remove(generationJobId(transitionId, run));
  }

}
