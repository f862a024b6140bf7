import { v7 as uuidv7 } from 'uuid';
import { estimateUsd } from '../domain/costs.ts';
import { ClaimRefused } from '../domain/claims.ts';
import { markRefused, markUncertain, recordAccepted, unclaimSubmit, type Submission } from '../domain/ledger.ts';
import type { Transition } from '../generated/prisma/client.ts';
import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import { webhookUrl } from '../providers/fal-webhook.ts';
import { isProviderError, ProviderError, type GenerationInput } from '../providers/provider.ts';
import { attemptFailed, finalFailure } from './attempts.ts';
import { followToEnd, releaseRequest } from '../domain/fal-requests.ts';
import { awaitLostSubmit } from './lost-submit.ts';
import { prepareImagesForSubmit } from './run-images.ts';
import type { PreparedImage } from '../domain/run-images.ts';
import { checkAbort, loadRow, Park, persist, type RunContext } from './run-context.ts';

type RunImages = { front: PreparedImage; tail: PreparedImage };

const inputOf = (t: Transition, images: RunImages): GenerationInput => ({
  prompt: t.prompt,
  negativePrompt: t.negativePrompt,
  frontImageUrl: images.front.url,
  tailImageUrl: images.tail.url,
  frontImageKey: images.front.key,
  tailImageKey: images.tail.key,
  durationSeconds: t.durationSeconds,
  transitionType: t.transitionType,
});


/** A pause before looking again, spread so parked jobs do not all wake at once. */
const jittered = (ms: number) => Math.round(ms * (0.75 + Math.random() * 0.5));

/**
 * One submit to fal for a QUEUED row: ready its images (checks before spending: a bad image ends
 * the run FAILED while nothing is claimed or sent, see run-images.ts), claim it with its ledger
 * row (the slot and the budget reservation, atomically), send it exactly once, and record the
 * request id fal returns. Returns the row to go on with: SUBMITTED with its request id (to
 * track), or as someone else left it.
 *
 * Money rules: nothing is sent without a committed claim; a claim whose submit never left is
 * undone (the row is QUEUED again, as if nothing happened); an id fal returned is stored whatever
 * happened meanwhile, and a request no run waits for any more is canceled at fal and followed.
 */
export async function submitNext(ctx: RunContext, known?: Transition | null): Promise<{ row: Transition | null; justSubmitted: boolean }> {
  const { segue } = ctx;
  const { config, metrics, provider } = segue;
  checkAbort(ctx);
  // The images are readied while the row is still QUEUED: a failure there (a bad image, our
  // storage down) never leaves a claim behind.
  const queued = known?.status === S.QUEUED ? known : await loadRow(ctx);
  if (!queued || queued.status !== S.QUEUED || queued.run !== ctx.ref.run) return { row: queued, justSubmitted: false };
  const images = await prepareImagesForSubmit(segue, queued);
  if (images instanceof ProviderError) return attemptFailed(ctx, images, ctx.log, { guard: { from: [S.QUEUED] } });
  checkAbort(ctx);
  const submissionId = uuidv7();
  let claimed: Transition | null;
  try {
    claimed = await ctx.claims.claim(ctx.ref, submissionId, { signal: ctx.signal, priority: ctx.job.opts.priority });
  } catch (error) {
    if (error instanceof ClaimRefused) {
      // A claim that waited for a slot may have been let go because the worker is stopping.
      checkAbort(ctx);
      return refused(ctx, error);
    }
    // PostgreSQL failed and the claim may or may not have committed: make sure it did not.
    await persist(ctx, 'undo a claim', () => unclaimSubmit(segue, submissionId));
    throw error;
  }
  if (!claimed) return { row: await loadRow(ctx), justSubmitted: false };
  // This job had its turn: the fair share's clock follows it.
  void segue.generationJobs.fairness.started(ctx.job.opts.priority).catch(() => undefined);

  const submission: Submission = {
    id: submissionId,
    transitionId: claimed.id,
    accountId: claimed.accountId,
    run: claimed.run,
    attempt: claimed.attempts,
    model: config.fal.model,
    costUsd: estimateUsd(config.pricePerSecondUsd, claimed.durationSeconds) ?? 0,
  };
  // Until the submit leaves, a failure undoes the claim: nothing was sent, nothing is uncertain.
  let input: GenerationInput;
  let webhook: string | undefined;
  try {
    checkAbort(ctx);
    input = inputOf(claimed, images);
    webhook = webhookUrl(config, { transitionId: claimed.id, run: claimed.run, attempt: claimed.attempts });
  } catch (error) {
    await persist(ctx, 'undo a claim', () => unclaimSubmit(segue, submissionId));
    throw error;
  }

  const started = performance.now();
  let answer: { requestId: string; queuePosition: number | null };
  try {
    // No abort signal: a submit in flight always runs to its answer, so its id is recorded.
    answer = await provider.submit(input, { webhookUrl: webhook });
    metrics.falRequests.inc({ operation: 'submit', outcome: 'ok' });
  } catch (error) {
    metrics.falRequests.inc({ operation: 'submit', outcome: 'error' });
    const failure = toProviderError(error);
    if (failure.uncertain) {
      metrics.uncertainSubmits.inc();
      ctx.log.warn({ err: failure, batchId: claimed.batchId, attempt: claimed.attempts }, 'fal submit outcome unknown');
      // It holds no slot while Segue waits to learn whether fal took it.
      await persist(ctx, 'note an uncertain submit', () => markUncertain(segue, submissionId));
      ctx.claims.slotFreed();
      return { row: await awaitLostSubmit(ctx, claimed, { answerLost: true }), justSubmitted: false };
    }
    await persist(ctx, 'note a refused submit', () => markRefused(segue, submissionId));
    ctx.claims.slotFreed();
    return attemptFailed(ctx, failure, ctx.log, { guard: { falRequestId: null, from: [S.SUBMITTED] }, attempt: claimed.attempts });
  } finally {
    metrics.falLatency.observe({ operation: 'submit' }, (performance.now() - started) / 1000);
  }

  const log = ctx.log.child({ batchId: claimed.batchId, falRequestId: answer.requestId, attempt: claimed.attempts });
  const recorded = await persist({ log }, 'record the request id fal returned', () =>
    recordAccepted(segue, submission, answer.requestId, answer.queuePosition),
  ).catch(async (err: unknown) => {
    // PostgreSQL refused it for longer than any outage should last: do not let fal run a job
    // nobody will ever follow. The id is in this log line for a person to reconcile.
    log.error({ err }, 'could not record the request id fal returned; canceling it at fal');
    await provider.cancel(answer.requestId).catch(() => undefined);
    throw err;
  });
  if (recorded) {
    log.info({ queuePosition: answer.queuePosition }, 'submitted to fal');
    return { row: recorded, justSubmitted: true };
  }
  const now = await loadRow(ctx);
  if (now?.falRequestId === answer.requestId) return { row: now, justSubmitted: true }; // a webhook recorded it first
  // Canceled or superseded while the submit was on its way: nobody waits for this request. Stop
  // it (a queued one stops; a running one may bill anyway) and follow it to its end.
  const reason = now?.run === claimed.run && now.status === S.CANCELED ? 'CANCELED' : 'SUPERSEDED';
  log.info({ reason }, 'fal accepted a submit no run waits for any more; canceling it there');
  if (!(await releaseRequest(segue, answer.requestId, reason, log))) {
    await followToEnd(segue, answer.requestId, Date.now() + config.fal.cancelGraceMs, log, ctx.signal);
  }
  return { row: now, justSubmitted: false };
}

let lastCapRestore = 0;

/** A claim that sent nothing: wait for a slot or an earlier request, or end the run. */
async function refused(ctx: RunContext, refusal: ClaimRefused): Promise<never> {
  const { config, generationJobs } = ctx.segue;
  switch (refusal.reason) {
    case 'cap':
      // PostgreSQL counts the cap's worth in flight, so Redis let this job run past a cap it may
      // no longer hold (a wipe, a failover): put it back (once in a while, not per refusal) before
      // waiting for a slot. Requests followed outside any job (canceled runs fal keeps running)
      // also hold slots: the wait is long enough not to churn through the whole queue.
      if (Date.now() - lastCapRestore > 5_000) {
        lastCapRestore = Date.now();
        await generationJobs.setFalConcurrency(config.fal.concurrency).catch((err) => ctx.log.warn({ err }, 'could not restore FAL_CONCURRENCY'));
      }
      ctx.log.debug({ inFlight: refusal.details.inFlight }, 'no fal slot free; waiting');
      throw new Park(jittered(config.fal.pollMaxIntervalMs), refusal.message);
    case 'previous-open':
      ctx.log.info('an earlier request of this transition may still run at fal; waiting for it to end');
      throw new Park(jittered(config.fal.pollMaxIntervalMs), refusal.message);
    case 'budget':
    case 'price-unknown':
      return attemptFailed(ctx, finalFailure('BUDGET_EXCEEDED', refusal.message), ctx.log, { guard: { from: [S.QUEUED] } });
  }
}

const toProviderError = (error: unknown): ProviderError =>
  isProviderError(error)
    ? error
    : new ProviderError('FAL_NETWORK', error instanceof Error ? error.message : String(error), { retryable: true });
