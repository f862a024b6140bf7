import { UnrecoverableError, type Job } from 'bullmq';
import { changeTransition, loadTransition } from '../domain/state-machine.ts';
import type { Transition } from '../generated/prisma/client.ts';
import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import type { Logger } from '../logger.ts';
import { isMediaError } from '../media/errors.ts';
import type { CopyJobData } from '../queue/copy-queue.ts';
import type { Segue } from '../runtime.ts';

const RUNNING = [S.SUBMITTED, S.IN_PROGRESS];

/** A row whose provider result is known and not yet stored, in this run. */
export const awaitsCopy = (row: Transition | null, run: number): row is Transition =>
  !!row && row.run === run && RUNNING.includes(row.status as (typeof RUNNING)[number]) && !!row.falVideoUrl;

/**
 * Copies the provider's video into Segue's storage, then completes: `videoUrl` is always Segue's
 * copy (fal's URLs expire). The poster follows on the media queue. Throws when the copy fails;
 * the caller decides whether to try again. A row that moved on meanwhile (canceled, regenerated,
 * completed by another copy) is left as it is.
 */
export async function storeVideo(segue: Segue, row: Transition, log: Logger): Promise<Transition | null> {
  const { media, metrics, provider } = segue;
  const key = `transitions/${row.id}/r${row.run}-a${row.attempts}.mp4`;
  const stored = await media.storeFrom(row.falVideoUrl!, key, 'video/mp4');
  const done = await changeTransition(
    segue,
    { id: row.id, run: row.run },
    S.COMPLETED,
    { videoUrl: stored.url, videoKey: stored.key, completedAt: new Date(), queuePosition: null, errorCode: null, errorMessage: null },
    { falRequestId: row.falRequestId, from: RUNNING },
  );
  if (!done) return loadTransition(segue, row.id);
  metrics.finished.inc({ status: S.COMPLETED });
  metrics.generationDuration.observe((Date.now() - (row.submittedAt ?? row.updatedAt).getTime()) / 1000);
  log.info({ videoUrl: stored.url }, 'completed');
  if (row.falRequestId) await provider.forget?.(row.falRequestId).catch(() => undefined);
  await segue.mediaJobs
    .add({ kind: 'poster', transitionId: done.id, run: done.run })
    .catch((err) => log.warn({ err }, 'could not queue the poster; the reconciler will'));
  return done;
}

/** Worth another try: not a refused URL, a 4xx or an oversized file, which stay as they are. */
export const copyRetryable = (error: unknown) => !isMediaError(error) || error.retryable;

/** The video could not be stored after every try: the run fails, keeping `falVideoUrl`. */
export async function failCopy(segue: Segue, row: Transition, error: unknown, log: Logger) {
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
export function copyProcessor(segue: Segue) {
  return async (job: Job<CopyJobData>) => {
    const { transitionId, run } = job.data;
    const row = await loadTransition(segue, transitionId);
    if (!awaitsCopy(row, run)) return 'nothing to do';
    const log = segue.logger.child({ transitionId, run, batchId: row.batchId, falRequestId: row.falRequestId, jobId: job.id });
    try {
      await storeVideo(segue, row, log);
      return 'stored';
    } catch (error) {
      const last = !copyRetryable(error) || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      log.warn({ err: error, attempt: job.attemptsMade + 1, last }, 'could not copy the video into storage');
      if (!last) throw error;
      await failCopy(segue, row, error, log);
      throw new UnrecoverableError((error as Error).message);
    }
  };
}
