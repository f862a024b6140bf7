import { markEnded, noteCancelRequested, type RequestOutcome } from '../domain/ledger.ts';
import type { Logger } from '../logger.ts';
import { isProviderError, type RequestState } from '../providers/provider.ts';
import type { Segue } from '../runtime.ts';
import { pause } from './run-context.ts';

type FollowDeps = Pick<Segue, 'sql' | 'provider' | 'config' | 'metrics'>;

/** What fal's last word on a finished request says of its outcome. */
const outcomeOf = (state: Extract<RequestState, { state: 'COMPLETED' }>, canceled: boolean): RequestOutcome =>
  state.failed ? (canceled ? 'CANCELED' : 'ERROR') : 'OK';

/**
 * Asks fal to cancel a request no run waits for any more (noted in the ledger first, with why),
 * and looks once whether it has ended. A queued request stops; a running one may run on and be
 * billed, so it stays open in the ledger until fal says it ended. Returns true when it has.
 */
export async function releaseRequest(deps: FollowDeps, requestId: string, reason: string, log: Logger): Promise<boolean> {
  const noted = await noteCancelRequested(deps, requestId, reason);
  if (noted?.state === 'ENDED') return true;
  await deps.provider.cancel(requestId).catch((err: unknown) => log.warn({ err, falRequestId: requestId }, 'cancel at fal failed'));
  return checkEnded(deps, requestId, true, log);
}

/** One status call: records the end of the request when fal says it is over. */
export async function checkEnded(deps: FollowDeps, requestId: string, canceled: boolean, log: Logger): Promise<boolean> {
  try {
    const state = await deps.provider.status(requestId);
    if (state.state !== 'COMPLETED') return false;
    await markEnded(deps, requestId, outcomeOf(state, canceled));
    await deps.provider.forget?.(requestId).catch(() => undefined);
    return true;
  } catch (err) {
    if (isProviderError(err) && err.requestOver) {
      // fal no longer knows it: nothing runs there any more.
      await markEnded(deps, requestId, 'LOST');
      return true;
    }
    log.warn({ err, falRequestId: requestId }, 'could not read the status of a released request');
    return false;
  }
}

/**
 * Follows a released request until fal says it ended (polling, backing off) or `until` passes;
 * the reconciler follows whatever is still open after that. Returns true when it ended.
 */
export async function followToEnd(deps: FollowDeps, requestId: string, until: number, log: Logger, signal?: AbortSignal): Promise<boolean> {
  const { pollIntervalMs, pollMaxIntervalMs } = deps.config.fal;
  for (let interval = pollIntervalMs; ; interval = Math.min(Math.round(interval * 1.5), pollMaxIntervalMs)) {
    if (await checkEnded(deps, requestId, true, log)) return true;
    const left = until - Date.now();
    if (left <= 0 || signal?.aborted) return false;
    await pause(Math.min(interval, left), signal);
  }
}
