import type { Transition } from '../generated/prisma/client.ts';
import type { Metrics } from '../metrics.ts';
import { adoptRequest, markEnded, recordResult } from './ledger.ts';
import type { StateDeps } from './state-machine.ts';

export interface ProviderCallback {
  requestId: string;
  ok: boolean;
  videoUrl: string | null;
  /** The submission the callback URL named (transition, run and attempt), already authenticated by its token. */
  submission: { transitionId: string; run: number; attempt: number } | null;
}

export type CallbackOutcome = 'result-recorded' | 'late-result-recorded' | 'adopted' | 'recorded' | 'duplicate' | 'unknown' | 'left-to-tracker';

export type CallbackDeps = StateDeps & {
  metrics?: Metrics;
  /** Wakes the run's job now, if it is parked waiting (for the answer of a submit that was lost). */
  wakeRun?: (ref: { id: string; run: number }) => Promise<void>;
  /** Has the video of a run that had given up on its request copied into storage (the copy queue). */
  copyLate?: (row: Transition) => Promise<void>;
  /**
   * Tells the worker following the transition's request that fal ended it without a result, so it
   * reads fal's answer now rather than at its next poll (up to FAL_POLL_MAX_INTERVAL_MS away).
   */
  requestEnded?: (ended: { transitionId: string; requestId: string }) => Promise<void>;
};

/**
 * A provider's completion callback (fal's webhook). It records where the video is and wakes the
 * worker tracking the request, which copies it into Segue's storage and completes the transition
 * (a copy takes longer than fal waits for a webhook answer). Idempotent per request id: only a
 * row still running with that request id and no recorded result changes, so a re-delivery
 * changes nothing. A failure is left to the tracking job, woken to read fal's answer and apply the
 * retry policy in one place. A callback can also bring the request id of a submit whose answer
 * was lost; a request of a run that is no longer current is recorded in the ledger (it may be
 * billed) and never adopted by another run.
 */
export async function applyProviderCallback(deps: CallbackDeps, callback: ProviderCallback): Promise<CallbackOutcome> {
  const ok = callback.ok && callback.videoUrl !== null;
  if (ok) {
    // The common cases in one statement: record the result on the row running with this request id,
    // (or on a run that gave up on it, at a time limit or on reading its result, whose video came
    // after all: it is paid for, so the run takes it; nothing tracks that run, so its copy is queued here),
    const recorded = await recordResult(deps, callback.requestId, callback.videoUrl!);
    if (recorded.row && recorded.late) {
      await deps.copyLate?.(recorded.row);
      return 'late-result-recorded';
    }
    if (recorded.row) return 'result-recorded';
    // or the ledger already holds the request under the submission this callback names, and that
    // statement ended it: nothing is left to adopt or end (the tracker read the result first, or
    // fal delivers the webhook again).
    if (recorded.submission && (!callback.submission || sameSubmission(recorded.submission, callback.submission))) {
      return recorded.known ? 'duplicate' : 'unknown';
    }
  }
  // The worker may not have recorded the id yet (or never will: its answer was lost).
  const adopted = callback.submission ? await adoptRequest(deps, callback.submission, callback.requestId) : null;
  if (adopted?.row) {
    // A lost answer parked its job until it learns the id: the id is here, the job goes on now.
    // (A submit whose answer is merely still on its way has its worker waiting for it.)
    if (adopted.wasUncertain) await deps.wakeRun?.({ id: adopted.row.id, run: adopted.row.run }).catch(() => undefined);
    if (ok && (await recordResult(deps, callback.requestId, callback.videoUrl!)).row) return 'result-recorded';
  }
  // fal is done with the request, whoever it belongs to: it holds no slot any more.
  const ended = await markEnded(deps, callback.requestId, ok ? 'OK' : 'ERROR');
  // A failure is the tracking job's to handle: it is told now. Only a hint: should it be lost,
  // the job's own polling finds the failure (the port logs why).
  if (!ok && ended?.transitionId) await deps.requestEnded?.({ transitionId: ended.transitionId, requestId: callback.requestId }).catch(() => undefined);
  if (adopted?.row) return 'adopted';
  if (!ok) return adopted?.recorded ? 'recorded' : 'left-to-tracker';
  if (adopted?.recorded) return 'recorded';
  const [known] = await deps.sql.query<{ id: string }>(`SELECT "id" FROM "Transition" WHERE "falRequestId" = $1`, [callback.requestId]);
  return known ? 'duplicate' : 'unknown';
}

const sameSubmission = (a: { transitionId: string | null; run: number; attempt: number }, b: NonNullable<ProviderCallback['submission']>) =>
  a.transitionId === b.transitionId && a.run === b.run && a.attempt === b.attempt;
