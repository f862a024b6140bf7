import { noteCancelRequested } from '../domain/ledger.ts';
import type { Transition } from '../generated/prisma/client.ts';
import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import type { Logger } from '../logger.ts';
import type { ProviderErrorCode } from '../providers/provider.ts';
import type { RunContext } from './run-context.ts';

// A fal request's time limits as a run keeps them: time IN_PROGRESS against FAL_TIMEOUT_MS, time
// IN_QUEUE against FAL_QUEUE_TIMEOUT_MS, and the cancel at fal past either.

/** A cancel Segue asked of fal for this request: when, and the code the run fails with if fal stops it. */
export interface CancelAsked {
  at: number;
  code: Extract<ProviderErrorCode, 'FAL_TIMEOUT' | 'FAL_QUEUE_TIMEOUT'>;
}

/** The limit the request's current phase runs against: its queue wait, or its run time. */
export function limitOf(ctx: RunContext, row: Transition): Omit<CancelAsked, 'at'> & { at: number } | null {
  const { fal } = ctx.segue.config;
  if (row.status === S.IN_PROGRESS) {
    return { at: (row.startedAt ?? row.updatedAt).getTime() + fal.timeoutMs, code: 'FAL_TIMEOUT' };
  }
  if (fal.queueTimeoutMs === null) return null;
  return { at: (row.submittedAt ?? row.updatedAt).getTime() + fal.queueTimeoutMs, code: 'FAL_QUEUE_TIMEOUT' };
}

export const timeoutMessage = (ctx: RunContext, code: CancelAsked['code'], gaveUp = false) => {
  const { fal } = ctx.segue.config;
  const what =
    code === 'FAL_TIMEOUT'
      ? `still running at fal after ${fal.timeoutMs} ms (FAL_TIMEOUT_MS)`
      : `still waiting in fal's queue after ${fal.queueTimeoutMs} ms (FAL_QUEUE_TIMEOUT_MS)`;
  return gaveUp
    ? `The request was ${what}; it was canceled at fal, which had not ended it ${fal.cancelGraceMs} ms later.`
    : `The request was ${what} and was canceled at fal.`;
};

/** Past its limit: cancel at fal (once, noted in the ledger so a restart knows) and keep following. */
export async function cancelOverrun(ctx: RunContext, requestId: string, limit: { code: CancelAsked['code'] }, log: Logger): Promise<CancelAsked> {
  // A run-time overrun after a queue-time cancel fal did not honour asks again, on its own clock.
  const noted = await noteCancelRequested(ctx.segue, requestId, limit.code, { replace: limit.code === 'FAL_TIMEOUT' });
  const at = noted?.cancelRequestedAt?.getTime() ?? Date.now();
  const code = (noted?.cancelReason as CancelAsked['code'] | null) ?? limit.code;
  log.warn({ code }, 'request over its time limit; canceling it at fal and following it to its end');
  await ctx.segue.provider.cancel(requestId, ctx.signal ? { signal: ctx.signal } : {}).catch((err) =>
    log.warn({ err }, 'cancel at fal failed; following the request anyway'),
  );
  return { at, code };
}
