import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { changeTransition, loadTransition } from '../domain/state-machine.ts';
import type { Transition } from '../generated/prisma/client.ts';
import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import { isRunning, RUNNING } from '../domain/statuses.ts';
import { LocalLine } from './local-line.ts';
import type { Posters } from './posters.ts';
import type { Logger } from '../logger.ts';
import { isMediaError } from '../media/errors.ts';
import { copyJobId, type CopyJobData } from '../queue/copy-queue.ts';
import type { Segue } from '../runtime.ts';

/** A row whose provider result is known and not yet stored, in this run. */
export const awaitsCopy = (row: Transition | null, run: number): row is Transition =>
  !!row && row.run === run && isRunning(row.status) && !!row.falVideoUrl;

/**
 * Copies the provider's video into Segue's storage, then completes: `videoUrl` is always Segue's
 * copy (fal's URLs expire). The poster follows on the media queue. Throws when the copy fails;
 * the caller decides whether to try again. A row that moved on meanwhile (canceled, regenerated,
 * completed by another copy) is left as it is.
 */
async function storeVideo(segue: Segue, posters: Posters, row: Transition, log: Logger): Promise<void> {
  const { media, metrics, provider } = segue;
  const key = `transitions/${row.id}/r${row.run}-a${row.attempts}.mp4`;
  const stored = await media.storeFrom(row.falVideoUrl!, key, 'video/mp4', { keepLocal: true });
  let done: Transition | null;
  try {
    done = await changeTransition(
      segue,
      { id: row.id, run: row.run },
      S.COMPLETED,
      { videoUrl: stored.url, videoKey: stored.key, completedAt: new Date(), queuePosition: null, errorCode: null, errorMessage: null },
      { falRequestId: row.falRequestId, from: RUNNING },
    );
  } catch (error) {
    await stored.local?.release();
    throw error;
  }
  if (!done) {
    await stored.local?.release();
    return;
  }
  metrics.finished.inc({ status: S.COMPLETED });
  metrics.generationDuration.observe((Date.now() - (row.submittedAt ?? row.updatedAt).getTime()) / 1000);
  log.info({ videoUrl: stored.url }, 'completed');
  if (row.falRequestId) await provider.forget?.(row.falRequestId).catch(() => undefined);
  await posters.start(done, stored.local, log);
}

/** Worth another try: not a refused URL, a 4xx or an oversized file, which stay as they are. */
const copyRetryable = (error: unknown) => !isMediaError(error) || error.retryable;

/** The video could not be stored after every try: the run fails, keeping `falVideoUrl`. */
async function failCopy(segue: Segue, row: Transition, error: unknown, log: Logger) {
  const failed = await changeTransition(
    segue,
    { id: row.id, run: row.run },
    S.FAILED,
    {
      errorCode: 'MEDIA_COPY_FAILED',
      errorMessage: `The video could not be stored: ${(error as Error).message}`.slice(0, 2000),
      completedAt: new Date(),
      queuePosition: null,
    },
    { falRequestId: row.falRequestId, from: RUNNING },
  );
  if (failed) {
    segue.metrics.falErrors.inc({ code: 'MEDIA_COPY_FAILED' });
    segue.metrics.finished.inc({ status: S.FAILED });
    log.warn({ code: 'MEDIA_COPY_FAILED', attempt: failed.attempts }, 'failed');
  }
}

/**
 * The copy queue's jobs. BullMQ retries a failed copy with backoff; no new generation is paid
 * for. The row decides, so a copy job that runs twice, or after the row moved on, does nothing.
 */
export function copyProcessor(segue: Segue, posters: Posters) {
  return async (job: Job<CopyJobData>, token?: string) => {
    const { transitionId, run } = job.data;
    const row = await loadTransition(segue, transitionId);
    if (!awaitsCopy(row, run)) return 'nothing to do';
    const log = segue.logger.child({ transitionId, run, batchId: row.batchId, falRequestId: row.falRequestId, jobId: job.id });
    try {
      await storeVideo(segue, posters, row, log);
      return 'stored';
    } catch (error) {
      if (!isMediaError(error)) {
        // PostgreSQL or Redis failed, not the copy: try again soon, spending no attempt.
        log.warn({ err: error }, 'copy step failed on our side; retrying in 5 s');
        await job.moveToDelayed(Date.now() + 5_000, token);
        throw new DelayedError();
      }
      const last = !error.retryable || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      log.warn({ err: error, attempt: job.attemptsMade + 1, last }, 'could not copy the video into storage');
      if (!last) throw error;
      await failCopy(segue, row, error, log);
      throw new UnrecoverableError((error as Error).message);
    }
  };
}

/**
 * Copies finished videos in this worker process as soon as their result is known: no queue round
 * trip, no Redis call at all when it works. `limit` (COPY_CONCURRENCY) at once, a burst waiting
 * in line here. The row is the record: if this process dies mid-copy, the reconciler gives the
 * row a copy job once a copy here would have timed out (copyGraceMs). A copy that fails
 * retryably goes to the copy queue for BullMQ's retries; past the line, and while closing,
 * copies go to the queue straight away.
 */
export class Copier {
  private readonly line: LocalLine<{ row: Transition; log: Logger }>;

  constructor(
    private readonly segue: Segue,
    private readonly posters: Posters,
    limit: number,
  ) {
    this.line = new LocalLine({
      limit,
      maxWaiting: 10_000,
      keyOf: ({ row }) => copyJobId({ transitionId: row.id, run: row.run }),
      // One copy per run (the default batch): each is its own download.
      run: async ([work]) => {
        const { row, log } = work!;
        await this.copy(row, log).catch((err: unknown) => log.error({ err }, 'copy failed unexpectedly; the reconciler will queue it'));
      },
      handOff: ({ row, log }) =>
        this.segue.copyJobs
          .add({ transitionId: row.id, run: row.run })
          .then(() => undefined)
          .catch((err: unknown) => log.warn({ err }, 'could not queue the copy; the reconciler will')),
    });
  }

  start(row: Transition, log: Logger): Promise<void> {
    return this.line.offer({ row, log });
  }

  private async copy(row: Transition, log: Logger) {
    try {
      await storeVideo(this.segue, this.posters, row, log);
    } catch (error) {
      if (!copyRetryable(error)) return failCopy(this.segue, row, error, log);
      log.warn({ err: error }, 'could not copy the video into storage; the copy queue tries again');
      await this.segue.copyJobs.add({ transitionId: row.id, run: row.run }, { delayMs: 1_000 });
    }
  }

  /** Stops copying here: waiting copies, and those still running after `graceMs`, are handed to the queue (they may finish too). */
  close(graceMs?: number): Promise<void> {
    return this.line.close(graceMs);
  }
}
