import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { retryTransition } from '../domain/generation.ts';
import type { Transition } from '../generated/prisma/client.ts';
import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import { isProviderError } from '../providers/provider.ts';
import type { GenerationJobData } from '../queue/generation-queue.ts';
import type { Segue } from '../runtime.ts';
import type { ClaimBatcher } from '../domain/claims.ts';
import type { Copier } from './copy-jobs.ts';
import { awaitLostSubmit } from './lost-submit.ts';
import { Aborted, ABORT_LOCK_LOST, Park, type RunContext } from './run-context.ts';
import { submitNext } from './submit.ts';
import { COPYING, track } from './track.ts';
import type { Wakeups } from './wakeups.ts';

export { ABORT_LOCK_LOST, ABORT_SHUTDOWN } from './run-context.ts';

export type RunOutcome = 'completed' | 'copying' | 'failed' | 'canceled' | 'stale' | 'lock-lost' | 'retried';

/**
 * Drives one transition through one generation run. The row decides what to do, so the job is
 * safe to run again at any moment (a crash, a stall, a Redis wipe): QUEUED is submitted
 * (submit.ts); a row with a fal request id is tracked, never resubmitted (track.ts); a row that
 * was submitted but has no id waits for that answer and is never resubmitted blindly
 * (lost-submit.ts); a failed attempt follows the retry policy (attempts.ts).
 *
 * The job stays active while its fal request is in flight, which is what lets BullMQ's global
 * concurrency bound the jobs at fal across all workers (FAL_CONCURRENCY, plus the staged jobs
 * whose claims wait for a slot); the cap itself is the claim's, in PostgreSQL's ledger, which
 * outlives Redis. It holds no thread: it sleeps between polls and wakes early when the row
 * changes elsewhere (webhook, cancel).
 */
export async function runGeneration(
  segue: Segue,
  wakeups: Wakeups,
  copier: Copier,
  claims: ClaimBatcher,
  job: Job<GenerationJobData>,
  token: string | undefined,
  signal: AbortSignal | undefined,
): Promise<RunOutcome> {
  const ref = { id: job.data.transitionId, run: job.data.run };
  const ctx: RunContext = {
    segue,
    job,
    token,
    signal,
    ref,
    log: segue.logger.child({ transitionId: ref.id, run: ref.run, jobId: job.id }),
    watch: wakeups.watch(ref.id),
    copier,
    claims,
  };
  try {
    // Most jobs find their row QUEUED: submitNext loads it and submits.
    const first = await submitNext(ctx);
    return await drive(ctx, first.row, first.justSubmitted);
  } catch (error) {
    return onError(ctx, error);
  } finally {
    ctx.watch.close();
  }
}

async function drive(ctx: RunContext, start: Transition | null, justSubmitted: boolean): Promise<RunOutcome> {
  let row = start;
  let fresh = justSubmitted;
  for (;;) {
    if (!row || row.run !== ctx.ref.run) return 'stale';
    switch (row.status) {
      case S.COMPLETED:
        return 'completed';
      case S.FAILED:
        // A failed job runs again only when someone retries it from the queue dashboard (which
        // clears its failedReason): a retry of the transition, as retryTransition does it (a new
        // run). A stalled rerun of a job that failed here first is not: it never pays again.
        if (ctx.job.attemptsMade > 0 && !ctx.job.failedReason) {
          await retryTransition(ctx.segue, row.accountId, row.id).catch((err) => ctx.log.warn({ err }, 'dashboard retry refused'));
          return 'retried';
        }
        return 'failed';
      case S.CANCELED:
        return 'canceled';
      case S.DRAFT:
        return 'stale';
      case S.QUEUED: {
        const next = await submitNext(ctx, row);
        row = next.row;
        fresh = next.justSubmitted;
        break;
      }
      case S.SUBMITTED:
      case S.IN_PROGRESS: {
        const next = row.falRequestId ? await track(ctx, row, fresh) : await awaitLostSubmit(ctx, row);
        fresh = false;
        if (next === COPYING) return 'copying';
        row = next;
        break;
      }
    }
  }
}

async function onError(ctx: RunContext, error: unknown): Promise<RunOutcome> {
  const { job, token } = ctx;
  if (error instanceof Aborted) {
    if (error.reason === ABORT_LOCK_LOST) return 'lock-lost';
    // Shutting down: hand the job to another worker at once, without spending an attempt.
    await job.moveToDelayed(Date.now(), token);
    ctx.log.info('handed over on shutdown');
    throw new DelayedError();
  }
  if (error instanceof Park) {
    ctx.log.debug({ ms: error.ms, reason: error.message }, "parked");
    await job.moveToDelayed(Date.now() + error.ms, token);
    throw new DelayedError();
  }
  if (error instanceof UnrecoverableError || isProviderError(error) || error instanceof DelayedError) throw error;
  // Our own infrastructure (PostgreSQL, Redis) failed: try again soon, spending no attempt.
  ctx.log.error({ err: error }, 'generation step failed; retrying in 5 s');
  await job.moveToDelayed(Date.now() + 5_000, token);
  throw new DelayedError();
}
