import { submitAnswerMs } from '../domain/claims.ts';
import { loadSubmission, markUncertain, recordAccepted } from '../domain/ledger.ts';
import type { Transition } from '../generated/prisma/client.ts';
import { ProviderError } from '../providers/provider.ts';
import { attemptFailed } from './attempts.ts';
import { loadRow, Park, persist, type RunContext } from './run-context.ts';

const uncertainFailure = () =>
  new ProviderError(
    'FAL_SUBMIT_UNCERTAIN',
    'The submit to fal got no answer, so fal may have accepted (and be billing) it. Segue does not resubmit it by ' +
      'itself, to never pay twice; retry this transition once you have checked your fal dashboard.',
    { retryable: false, uncertain: true },
  );

/**
 * A row marked submitted with no request id: a submit whose answer has not come (its worker is
 * still waiting for it, lost it, or died mid-submit). fal may have accepted it, so it is never
 * sent again. While its answer can still come the job waits, parked (no slot held); then the
 * submission is UNCERTAIN. With webhooks, fal's callback (which names the transition, run and
 * attempt) can still bring the id, so the job keeps looking, parked, until the request would
 * have ended; without them, or after that, the run fails FAL_SUBMIT_UNCERTAIN for a person to
 * retry knowingly.
 */
export async function awaitLostSubmit(ctx: RunContext, row: Transition, how: { answerLost?: boolean } = {}): Promise<Transition | null> {
  const { segue } = ctx;
  const { config } = segue;
  const submittedAt = (row.submittedAt ?? row.updatedAt).getTime();
  const submission = await loadSubmission(segue, row.id, row.run, row.attempts);
  if (submission?.requestId) {
    // The ledger knows the id (a callback told it): the run takes it now.
    const adopted = await persist(ctx, 'adopt a recorded request id', () =>
      recordAccepted(
        segue,
        {
          id: submission.id,
          transitionId: row.id,
          accountId: row.accountId,
          run: row.run,
          attempt: row.attempts,
          model: submission.model,
          costUsd: Number(submission.costUsd),
        },
        submission.requestId!,
        null,
      ),
    );
    return adopted ?? loadRow(ctx);
  }
  const answerBy = submittedAt + submitAnswerMs(config.fal);
  if (submission?.state === 'SUBMITTING') {
    if (!how.answerLost && Date.now() < answerBy) {
      // Its worker may still be waiting for fal's answer, and will record it.
      throw new Park(Math.min(answerBy - Date.now(), config.fal.pollMaxIntervalMs), 'waiting for a submit answer');
    }
    segue.metrics.uncertainSubmits.inc();
    await persist(ctx, 'note an uncertain submit', () => markUncertain(segue, submission.id));
  }
  const still = { guard: { falRequestId: null }, attempt: row.attempts };
  if (!config.publicUrl) return attemptFailed(ctx, uncertainFailure(), ctx.log, still);
  const until = submittedAt + (config.fal.queueTimeoutMs ?? config.fal.timeoutMs) + config.fal.timeoutMs;
  if (Date.now() >= until) return attemptFailed(ctx, uncertainFailure(), ctx.log, still);
  throw new Park(Math.min(until - Date.now(), config.fal.pollMaxIntervalMs), 'waiting for fal to name a lost submit');
}
