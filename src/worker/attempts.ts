import { UnrecoverableError } from 'bullmq';
import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import type { Logger } from '../logger.ts';
import { ProviderError } from '../providers/provider.ts';
import type { ChangeGuard } from '../domain/state-machine.ts';
import { changeRow, type RunContext } from './run-context.ts';

/**
 * An attempt ended without a video, and its fal request (if any) is over. Retryable failures go
 * back to QUEUED with the error kept and are rescheduled by BullMQ (exponential backoff with
 * jitter, Retry-After honoured); the last attempt, or an error retrying cannot fix (422, a budget,
 * a timeout Segue enforced), ends the run FAILED with the code.
 */
export async function attemptFailed(
  ctx: RunContext,
  failure: ProviderError,
  log: Logger = ctx.log,
  /**
   * `guard`: only while the row still holds this attempt's request (a stale execution must not
   * end a newer attempt); `attempt`: the row's count of attempts, which a Redis wipe cannot reset.
   */
  options: { guard?: ChangeGuard; attempt?: number } = {},
): Promise<never> {
  const { metrics } = ctx.segue;
  metrics.falErrors.inc({ code: failure.code });
  const attempts = ctx.job.opts.attempts ?? 1;
  const made = Math.max(ctx.job.attemptsMade + 1, options.attempt ?? 0);
  const final = !failure.retryable || made >= attempts;
  const error = { errorCode: failure.code, errorMessage: failure.message.slice(0, 2000) };
  const guard = options.guard ?? {};
  if (final) {
    const failed = await changeRow(ctx, S.FAILED, { ...error, completedAt: new Date(), queuePosition: null }, guard);
    if (failed) {
      metrics.finished.inc({ status: S.FAILED });
      log.warn({ code: failure.code, attempt: failed.attempts }, 'failed');
    }
    throw new UnrecoverableError(`${failure.code}: ${failure.message}`);
  }
  await changeRow(ctx, S.QUEUED, { ...error, falRequestId: null, submittedAt: null, queuePosition: null, startedAt: null }, guard);
  metrics.retries.inc({ code: failure.code });
  log.warn({ code: failure.code, attemptsMade: ctx.job.attemptsMade + 1 }, 'attempt failed; will retry');
  throw failure;
}

/** The run ends FAILED with `code`, whatever attempts are left (nothing retrying could fix). */
export const finalFailure = (code: ProviderError['code'], message: string) => new ProviderError(code, message, { retryable: false });
