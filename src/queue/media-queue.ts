import type { RedisClient } from '../redis.ts';
import type { Config } from '../config.ts';
import { JobQueue } from './job-queue.ts';
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
export class MediaQueue extends JobQueue<MediaJobData> implements CombineJobs {
  constructor(config: Config, redis: RedisClient) {
    super(MEDIA_QUEUE, config, redis);
  }

  async add(data: MediaJobData) {
    await this.ready();
    const opts = this.jobOptions(mediaJobId(data), { attempts: 3, backoff: { type: 'exponential', delay: 2_000, jitter: 0.5 } });
    return this.queue.add(data.kind, data, opts);
  }
}
