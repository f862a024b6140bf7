import { changeTransition } from '../domain/state-machine.ts';
import type { Transition } from '../generated/prisma/client.ts';
import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import type { Logger } from '../logger.ts';
import type { Segue } from '../runtime.ts';

/** A local file of a video just stored, kept for its poster until released. */
export interface LocalVideo {
  file: string;
  release(): Promise<void>;
}

/** The first frame of a completed transition's video, as its posterUrl (from `localVideo` when given). */
export async function storePoster(segue: Segue, row: Transition, localVideo?: string) {
  const stored = await segue.media.poster(row.videoKey!, `transitions/${row.id}/r${row.run}-poster.jpg`, localVideo);
  return changeTransition(segue, { id: row.id, run: row.run }, S.COMPLETED, { posterUrl: stored.url, posterKey: stored.key }, { from: [S.COMPLETED] });
}

/**
 * Posters of the videos this process has just stored, made here from the file still at hand (no
 * second download, no queue round trip), up to `limit` at once (MEDIA_CONCURRENCY). Beyond that,
 * when a render fails, and on shutdown, the poster goes to the media queue; the reconciler queues
 * any that a dead process left behind.
 */
export class Posters {
  private readonly running = new Map<string, { promise: Promise<void>; row: Transition }>();
  private closing = false;

  constructor(
    private readonly segue: Segue,
    private readonly limit: number,
  ) {}

  /** The video of `row` (COMPLETED) was just stored: its poster, now here or later on the queue. */
  async start(row: Transition, local: LocalVideo | undefined, log: Logger): Promise<void> {
    if (this.closing || this.running.size >= this.limit || this.running.has(row.id)) {
      await local?.release();
      return this.queue(row, log);
    }
    const promise = storePoster(this.segue, row, local?.file)
      .then(() => undefined)
      .catch(async (err: unknown) => {
        log.warn({ err }, 'poster failed here; the media queue tries again');
        await this.queue(row, log);
      })
      .finally(async () => {
        this.running.delete(row.id);
        await local?.release();
      });
    this.running.set(row.id, { promise, row });
  }

  private queue(row: Transition, log: Logger) {
    return this.segue.mediaJobs
      .add({ kind: 'poster', transitionId: row.id, run: row.run })
      .then(() => undefined)
      .catch((err: unknown) => log.warn({ err }, 'could not queue the poster; the reconciler will'));
  }

  /** Stops making posters here: those still rendering after `graceMs` also go to the queue (a render that ends twice stores the same file). */
  async close(graceMs = 2_000): Promise<void> {
    this.closing = true;
    if (this.running.size === 0) return;
    const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.allSettled([...this.running.values()].map((r) => r.promise)), timer]);
    await Promise.all([...this.running.values()].map(({ row }) => this.queue(row, this.segue.logger)));
  }
}
