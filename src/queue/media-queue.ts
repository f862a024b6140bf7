import { Queue, type JobsOptions } from 'bullmq';
import type { RedisClient } from '../redis.ts';
import type { Config } from '../config.ts';
import type { CombineJobs } from '../domain/ports.ts';

export const MEDIA_QUEUE = 'media';

/** Jobs of the media queue: a poster for a stored video, or a combined video. Ids only. */
export type MediaJobData =
  | { kind: 'poster'; transitionId: string; run: number }
  | { kind: 'combine'; generatedTransitionId: string };

export const mediaJobId = (data: MediaJobData) =>
  data.kind === 'poster' ? `poster-${data.transitionId}-r${data.run}` : `combine-${data.generatedTransitionId}`;

/**
 * ffmpeg work after (or besides) generation: it has its own queue and concurrency
 * (MEDIA_CONCURRENCY per worker process), so renders never hold up the fal pipeline.
 */
export class MediaQueue implements CombineJobs {
  readonly queue: Queue<MediaJobData>;

  constructor(config: Config, connection: RedisClient) {
    this.queue = new Queue<MediaJobData>(MEDIA_QUEUE, { connection, prefix: config.queuePrefix });
    this.queue.on('error', () => undefined);
  }

  add(data: MediaJobData) {
    const opts: JobsOptions = {
      jobId: mediaJobId(data),
      attempts: 3,
      backoff: { type: 'exponential', delay: 2_000, jitter: 0.5 },
      removeOnComplete: true,
      removeOnFail: { age: 7 * 24 * 3600 },
    };
    return this.queue.add(data.kind, data, opts);
  }

  close() {
    return this.queue.close();
  }
}
