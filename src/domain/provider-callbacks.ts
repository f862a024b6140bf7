import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import type { Metrics } from '../metrics.ts';
import { changeTransition, recordFalRequest, type LedgerEntry, type StateDeps } from './state-machine.ts';

export interface ProviderCallback {
  requestId: string;
  ok: boolean;
  videoUrl: string | null;
  /** The submission the callback URL named, already authenticated by its token. */
  submission: { transitionId: string; attempt: number } | null;
}

export type CallbackOutcome = 'result-recorded' | 'adopted' | 'duplicate' | 'unknown' | 'left-to-tracker';

/**
 * A provider's completion callback (fal's webhook). It records where the video is and wakes the
 * worker tracking the request, which copies it into Segue's storage and completes the transition
 * (a copy takes longer than fal waits for a webhook answer). Idempotent per request id: only a
 * row still running with that request id and no recorded result changes, so a re-delivery
 * changes nothing. A failure is left to the tracking job, which reads fal's answer and applies the
 * retry policy in one place. A callback can also bring the request id of a submit whose answer
 * was lost.
 */
export type CallbackDeps = StateDeps & { metrics?: Metrics; ledger: (durationSeconds: number) => LedgerEntry };

export async function applyProviderCallback(
  deps: CallbackDeps,
  callback: ProviderCallback,
): Promise<CallbackOutcome> {
  const ok = callback.ok && callback.videoUrl !== null;
  // The common case in one statement: record the result on the row running with this request id.
  if (ok && (await recordResult(deps, callback.requestId, callback.videoUrl!))) return 'result-recorded';
  // The worker may not have recorded the id yet (or never will: its answer was lost).
  const adopted = callback.submission ? await adopt(deps, callback.submission, callback.requestId) : false;
  if (ok && (await recordResult(deps, callback.requestId, callback.videoUrl!))) return 'result-recorded';
  if (!ok) return adopted ? 'adopted' : 'left-to-tracker';
  const known = await deps.db.transition.findUnique({ where: { falRequestId: callback.requestId }, select: { id: true } });
  return known ? 'duplicate' : 'unknown';
}

/** Records the request id on the submission the callback URL named, if it still has none. */
async function adopt(deps: CallbackDeps, submission: { transitionId: string; attempt: number }, requestId: string) {
  const { ledger } = deps;
  const candidate = await deps.db.transition.findUnique({ where: { id: submission.transitionId } });
  if (!candidate || candidate.attempts !== submission.attempt || candidate.status !== S.SUBMITTED || candidate.falRequestId) {
    return false;
  }
  const row = await recordFalRequest(deps, { id: candidate.id, run: candidate.run }, requestId, null, ledger(candidate.durationSeconds));
  return row !== null;
}

function recordResult(deps: StateDeps, requestId: string, videoUrl: string) {
  return changeTransition(
    deps,
    { falRequestId: requestId },
    S.IN_PROGRESS,
    { falVideoUrl: videoUrl, startedAt: 'now-if-null', queuePosition: null },
    { noResultYet: true },
  );
}
