import type { RedisClient } from '../redis.ts';
import type { Config } from '../config.ts';
import { JobQueue } from './job-queue.ts';

export const COPY_QUEUE = 'copy';

/** A finished fal request whose video is to be copied into storage: the row holds the rest. */
export interface CopyJobData {
  transitionId: string;
  run: number;
}

export const copyJobId = (data: CopyJobData) => `copy-${data.transitionId}-r${data.run}`;

/** After this long without a change, a result still waiting for its copy has lost its copier. */
export const copyGraceMs = (config: Config) => config.media.fetchTimeoutMs + 5_000;

/** Tries to copy a finished video before its transition fails with MEDIA_COPY_FAILED. */
export const COPY_ATTEMPTS = 5;

/**
 * Copies of finished videos into Segue's storage, apart from the generation jobs: a fal request is
 * over once fal has the result, so its FAL_CONCURRENCY slot goes to the next submit at once instead
 * of waiting for the download (seconds for a real video). The worker that saw the result copies it
 * at once (see Copier); jobs here are the retries of failed copies, the copies that worker had no
 * room for or left behind on shutdown, and the ones the reconciler finds orphaned.
 */
export class CopyQueue extends JobQueue<CopyJobData> {
  constructor(config: Config, redis: RedisClient) {
    super(COPY_QUEUE, config, redis);
  }

  /** One job per (transition, run). */
  async add(data: CopyJobData, options: { delayMs?: number } = {}) {
    await this.ready();
    const opts = this.jobOptions(copyJobId(data), {
      ...(options.delayMs ? { delay: options.delayMs } : {}),
      attempts: COPY_ATTEMPTS,
      // 1, 2, 4, 8 s (with jitter): the video is paid for, and fal keeps it about an hour.
      backoff: { type: 'exponential', delay: 1_000, jitter: 0.5 },
    });
    return this.queue.add('copy', { transitionId: data.transitionId, run: data.run }, opts);
  }
}
