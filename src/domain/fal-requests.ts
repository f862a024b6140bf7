import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { isProviderError, type RequestState, type VideoProvider } from '../providers/provider.ts';
import type { Transition } from '../generated/prisma/client.ts';
import { markEnded, noteCancelRequested, recordResult, type RequestOutcome } from './ledger.ts';
import { GAVE_UP } from './statuses.ts';
import type { StateDeps } from './state-machine.ts';

/**
 * Requests fal accepted that no run follows any more (a run canceled, superseded, given up): they
 * are canceled at fal and followed until fal says they ended, so the ledger frees their slot, the
 * transition may submit again, and a video fal delivers anyway after its run gave up is kept.
 * The worker, the reconciler and the CLI all follow requests through here.
 */
export type FollowDeps = StateDeps & {
  provider: VideoProvider;
  config: Pick<Config, 'fal'>;
  /** Where a late video goes to be copied into storage (the copy queue). */
  copyJobs: { add(data: { transitionId: string; run: number }): Promise<unknown> };
};

/** A cancel fal may not have received (its call failed) is sent again after this long. */
const CANCEL_AGAIN_MS = 10 * 60_000;

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
  // Once; again only long after, in case that call never reached fal.
  if (!noted || noted.first || Date.now() - (noted.cancelRequestedAt?.getTime() ?? 0) > CANCEL_AGAIN_MS) {
    await deps.provider.cancel(requestId).catch((err: unknown) => log.warn({ err, falRequestId: requestId }, 'cancel at fal failed'));
  }
  return checkEnded(deps, requestId, true, log);
}

/** One status call: records the end of the request when fal says it is over. */
export async function checkEnded(deps: FollowDeps, requestId: string, canceled: boolean, log: Logger): Promise<boolean> {
  try {
    const state = await deps.provider.status(requestId);
    if (state.state !== 'COMPLETED') return false;
    // A late video is taken before the request is marked ended: should that fail, the request
    // stays open and the next pass tries again. Ended first, a paid video was left behind.
    if (!state.failed && !(await deliverLate(deps, requestId, log))) return false;
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
    await sleep(Math.min(interval, left), undefined, signal ? { signal } : {}).catch(() => undefined);
  }
}

/**
 * A request its run gave up on (it overran a time limit and fal had not ended it within
 * FAL_CANCEL_GRACE_MS) that fal ran to the end after all: the video is paid for, so the run takes
 * it (see ledger.recordResult) and the copy queue stores it. False when the result could not
 * be read or recorded (tried again later).
 */
async function deliverLate(deps: FollowDeps, requestId: string, log: Logger): Promise<boolean> {
  const [late] = await deps.sql.query<{ id: string }>(`SELECT "id" FROM "Transition" WHERE "falRequestId" = $1 AND ${GAVE_UP}`, [requestId]);
  if (!late) return true;
  let recorded: Awaited<ReturnType<typeof recordResult>>;
  try {
    const result = await deps.provider.result(requestId);
    recorded = await recordResult(deps, requestId, result.videoUrl);
  } catch (err) {
    if (isProviderError(err) && err.requestOver) {
      // fal no longer has the result (it keeps them about an hour): a paid video is lost.
      log.error({ err, falRequestId: requestId, transitionId: late.id }, 'fal no longer has the video of a request its run had given up on');
      await markEnded(deps, requestId, 'LOST');
      return true;
    }
    log.warn({ err, falRequestId: requestId }, 'could not take the late result of a request; trying again later');
    return false;
  }
  if (recorded.row && recorded.late) await copyLateResult(deps, recorded.row, log);
  return true;
}

/** Queues the copy of a late video into storage; should that fail, the reconciler queues it (its row waits with the video URL). */
export async function copyLateResult(deps: Pick<FollowDeps, 'copyJobs'>, row: Pick<Transition, 'id' | 'run' | 'falRequestId'>, log: Logger) {
  log.info({ transitionId: row.id, falRequestId: row.falRequestId }, 'fal delivered a request its run had given up on; storing its video');
  await deps.copyJobs.add({ transitionId: row.id, run: row.run }).catch((err: unknown) => log.warn({ err, transitionId: row.id }, 'could not queue the copy of a late video; the reconciler will'));
}

/**
 * Follows an account's requests still at fal (their runs canceled) until fal has ended them all,
 * or `until` passes. Returns how many are still open then.
 */
export async function releaseAccountRequests(deps: FollowDeps, accountId: string, until: number, log: Logger): Promise<number> {
  for (let interval = deps.config.fal.pollIntervalMs; ; interval = Math.min(interval * 2, deps.config.fal.pollMaxIntervalMs)) {
    const open = await deps.sql.query<{ requestId: string | null }>(
      `SELECT "requestId" FROM "FalRequest" WHERE "accountId" = $1::uuid AND "state" IN ('SUBMITTING', 'ACCEPTED')`,
      [accountId],
    );
    let left = open.length;
    for (const { requestId } of open) {
      if (requestId && (await releaseRequest(deps, requestId, 'CANCELED', log))) left -= 1;
    }
    if (left === 0 || Date.now() >= until) return left;
    await sleep(Math.min(interval, Math.max(0, until - Date.now())));
  }
}
