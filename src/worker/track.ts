import type { Transition } from '../generated/prisma/client.ts';
import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import type { Logger } from '../logger.ts';
import type { RequestState } from '../providers/provider.ts';
import { attemptFailed, finalFailure } from './attempts.ts';
import { followToEnd, releaseRequest } from '../domain/fal-requests.ts';
import { markEnded } from '../domain/ledger.ts';
import { isRunning } from '../domain/statuses.ts';
import { cancelOverrun, limitOf, timeoutMessage, type CancelAsked } from './request-limits.ts';
import { asProviderError, awaitsCopyNow, awaitsWebhook, COPYING, failUnlessVideo, finish, handled, noteEnded, store, type WebhookDue } from './request-result.ts';
import { changeRow, checkAbort, loadRow, rowAfterChange, type RunContext } from './run-context.ts';
import { StatusFeed } from './status-feed.ts';

export { COPYING };

/**
 * Follows the run's fal request until it ends: polls its status (backing off, waking early when
 * the row changes elsewhere: a webhook, a cancel), and once fal has finished, reads the result and
 * hands the video to the copier. The request is the run's until fal says it ended, so nothing is
 * submitted again meanwhile:
 * - time IN_PROGRESS counts against FAL_TIMEOUT_MS, time IN_QUEUE against FAL_QUEUE_TIMEOUT_MS;
 *   past either, the request is canceled at fal and still followed: if fal runs it to the end
 *   anyway (it is paid for), its video is used; if fal stops it, the run fails with the timeout;
 * - a failed status or result call is only the call's: asked again, spending no attempt;
 * - the run ended elsewhere (canceled, superseded): the request is still followed to its end.
 */
export async function track(ctx: RunContext, start: Transition, justSubmitted: boolean): Promise<Transition | null | typeof COPYING> {
  const { config, metrics } = ctx.segue;
  let row = start;
  const requestId = row.falRequestId!;
  const log = ctx.log.child({ batchId: row.batchId, falRequestId: requestId });
  // With webhooks fal tells us when it is done; polling is only the fallback, at the slow end.
  const firstInterval = config.publicUrl ? config.fal.pollMaxIntervalMs : config.fal.pollIntervalMs;
  let interval = firstInterval;
  // Right after a submit fal has just said where the request stands: wait before asking again.
  let nextPollAt = justSubmitted ? Date.now() + interval : 0;
  let cancel: CancelAsked | null = null;
  // A webhook said fal ended the request: ask fal at once.
  let askNow = false;
  // Since when no status call has answered: a fal that cannot be asked for longer than a run may
  // take is treated as an overrun, so a row never waits without bound.
  let unansweredSince: number | null = null;
  const guard = { falRequestId: requestId };
  // fal pushes each status on its stream (within milliseconds of fal); polling is the fallback.
  const { provider } = ctx.segue;
  const feed =
    config.fal.statusMode === 'stream' && provider.statusStream
      ? new StatusFeed((signal, onState) => provider.statusStream!(requestId, onState, { signal }), { metrics, log }).start()
      : null;
  // fal's stream said it finished the request: its webhook is awaited with the result (see
  // WebhookDue), and the ledger's note that fal ended it, made then, is kept for finish().
  let webhookDue: WebhookDue | null = null;
  let endNoted: Promise<unknown> | undefined;
  // That note has let this process's staged claims take the slot.
  let slotLet = false;
  // fal's webhook said the request failed: its result is read at once, whatever the stream says.
  let failureNoticed = false;
  // Once the stream has brought COMPLETED it is over: whatever must still be asked is polled.
  const polling = () => !feed || feed.pollingInstead || endNoted !== undefined;
  // fal has ended the request: its stream, if it has answered, is let bring COMPLETED and close.
  let falEnded = false;
  metrics.tracking.inc();
  try {
    for (;;) {
      checkAbort(ctx);
      // A result is known (a webhook brought it, or a run before a crash): store it.
      if (row.falVideoUrl) {
        falEnded = true;
        return store(ctx, row, log);
      }
      // A queue-time cancel that fal did not honour (it had just started the job): the run is now
      // measured against its run time instead, and canceled again only if it overruns that.
      if (cancel?.code === 'FAL_QUEUE_TIMEOUT' && row.status === S.IN_PROGRESS) cancel = null;
      // While its webhook is awaited, fal has finished the request: no time limit is left to keep.
      let limit = webhookDue ? null : limitOf(ctx, row);
      if (!webhookDue && unansweredSince !== null && (!limit || unansweredSince + config.fal.timeoutMs < limit.at)) {
        limit = { at: unansweredSince + config.fal.timeoutMs, code: 'FAL_TIMEOUT' };
      }
      // A status is about to be asked (fal's webhook said the request ended): its answer comes first.
      if (!cancel && limit && !askNow && Date.now() >= limit.at) cancel = await cancelOverrun(ctx, requestId, limit, log);
      if (cancel && Date.now() >= cancel.at + config.fal.cancelGraceMs) {
        // fal neither stopped nor finished it: the run gives up; the ledger keeps the request open
        // and the reconciler follows it to its end (and delivers its video if it comes).
        log.warn('fal has not ended a canceled request; the run gives up on it');
        // Recording the video, the webhook ended the request in the ledger: its slot is free.
        return failUnlessVideo(ctx, finalFailure(cancel.code, timeoutMessage(ctx, cancel.code, true)), log, {
          guard,
          attempt: row.attempts,
          onVideo: () => ctx.claims.slotFreed(),
        });
      }
      // What the stream brought since last time: handled like a poll's answer.
      let pushed = feed?.take() ?? null;
      if (pushed?.state === 'COMPLETED' && !endNoted && !failureNoticed && awaitsWebhook(ctx, pushed, cancel)) {
        webhookDue = { until: Date.now() + config.fal.webhookWaitMs, state: pushed };
        endNoted = handled(noteEnded(ctx, requestId, false).then(() => void (slotLet = true)));
        // No poll before the wait is over (polling takes over from the stream now).
        nextPollAt = webhookDue.until;
        falEnded = true;
        pushed = null;
      }
      // No webhook in time (lost, late, refused by our check): the result is read from fal after all.
      if (webhookDue && !pushed && !askNow && Date.now() >= webhookDue.until) {
        metrics.webhookWaits.inc({ outcome: 'read' });
        pushed = webhookDue.state;
      }
      const wakeAt = pushed || askNow
        ? 0
        : Math.min(
            webhookDue ? webhookDue.until : Infinity,
            polling() ? nextPollAt : Infinity,
            limit && !cancel ? limit.at : Infinity,
            cancel ? cancel.at + config.fal.cancelGraceMs : Infinity,
          );
      if (Date.now() < wakeAt) {
        const news = feed && !feed.pollingInstead ? feed.news() : null;
        const woke = await ctx.watch.sleep(Math.min(wakeAt - Date.now(), 2 ** 31 - 1), row.version, [ctx.signal, news]);
        if (woke === 'aborted') {
          checkAbort(ctx);
          if (feed?.pollingInstead) nextPollAt = Math.min(nextPollAt, Date.now());
        }
        // fal's webhook said this request ended without a result: its answer is read now, whether
        // this run polls or streams (a stream may be slow to say so, or stalled). One of an
        // earlier run's request is not this tracker's news.
        if (typeof woke === 'object' && 'requestEnded' in woke) {
          if (woke.requestEnded === requestId) {
            if (webhookDue) metrics.webhookWaits.inc({ outcome: 'webhook' });
            askNow = true;
            failureNoticed = true;
            // fal's answer decides now, not the stream's COMPLETED the wait began with.
            webhookDue = null;
          }
        } else if (typeof woke === 'object') {
          // The change's own message usually tells the new row; PostgreSQL is read when it cannot.
          const fresh = await rowAfterChange(ctx, woke, row);
          if (!fresh || fresh.run !== row.run || fresh.falRequestId !== requestId || !isRunning(fresh.status)) {
            // Ended elsewhere (canceled, completed by a webhook and stored, superseded): whatever
            // it ended as, the request is followed until fal ends it too.
            return afterRunEnded(ctx, requestId, cancel !== null, log, fresh);
          }
          // A webhook recorded the result, ending the request in the ledger in the same
          // statement: this process's staged claims may take its slot now (unless the note
          // made when the wait began has let them already).
          if (fresh.falVideoUrl && !row.falVideoUrl && !slotLet) ctx.claims.slotFreed();
          if (webhookDue && fresh.falVideoUrl) metrics.webhookWaits.inc({ outcome: 'webhook' });
          row = fresh;
        }
        continue;
      }
      let state: RequestState;
      const polled = performance.now();
      try {
        // Asked now, fal's answer is newer than what the stream brought before.
        const ask = askNow || !pushed;
        askNow = false;
        state = ask ? await ctx.segue.provider.status(requestId, ctx.signal ? { signal: ctx.signal } : {}) : pushed!;
        pushed = null;
      } catch (error) {
        const failure = asProviderError(error);
        if (failure.requestOver) {
          // fal no longer knows the request: nothing runs there, the attempt is over. One fal had
          // already started may have been paid for: then it is not submitted again by itself.
          await markEnded(ctx.segue, requestId, 'LOST');
          const lost = row.status === S.IN_PROGRESS ? finalFailure(failure.code, `${failure.message} It had started at fal.`) : failure;
          return attemptFailed(ctx, lost, log, { guard, attempt: row.attempts });
        }
        unansweredSince ??= Date.now();
        metrics.falErrors.inc({ code: failure.code });
        log.warn({ err: failure }, 'fal status call failed; tracking continues');
        nextPollAt = Date.now() + Math.max(failure.options.retryAfterMs ?? 0, interval);
        interval = Math.min(Math.round(interval * 1.5), config.fal.pollMaxIntervalMs);
        continue;
      } finally {
        metrics.falLatency.observe({ operation: 'status' }, (performance.now() - polled) / 1000);
      }
      unansweredSince = null;
      let changed: Transition | null = row;
      if (state.state === 'IN_QUEUE' && row.status === S.SUBMITTED && state.queuePosition !== row.queuePosition) {
        changed = await changeRow(ctx, S.SUBMITTED, { queuePosition: state.queuePosition }, { ...guard, from: [S.SUBMITTED] });
      } else if (state.state === 'IN_PROGRESS' && row.status === S.SUBMITTED) {
        changed = await changeRow(ctx, S.IN_PROGRESS, { startedAt: 'now-if-null', queuePosition: null }, guard);
        if (changed) log.info('in progress at fal');
        interval = firstInterval;
      } else if (state.state === 'COMPLETED') {
        falEnded = true;
        // fal's webhook said it failed, though this status does not (fal's older status bodies
        // carry no error): its result is read as a failure's, whose 5xx is the answer, not a fault.
        return finish(ctx, row, failureNoticed && !state.failed ? { ...state, failed: true } : state, cancel, log, endNoted);
      }
      if (!changed) return afterRunEnded(ctx, requestId, cancel !== null, log, await loadRow(ctx));
      row = changed;
      nextPollAt = Date.now() + interval;
      interval = Math.min(Math.round(interval * 1.5), config.fal.pollMaxIntervalMs);
    }
  } finally {
    feed?.close(falEnded);
    metrics.tracking.dec();
  }
}

/**
 * The run ended elsewhere, or moved on, while its request may still run at fal: follow the
 * request until fal ends it (bounded; the reconciler follows what is left), then say how the
 * row stands.
 */
async function afterRunEnded(
  ctx: RunContext,
  requestId: string,
  cancelAsked: boolean,
  log: Logger,
  row: Transition | null,
): Promise<Transition | null | typeof COPYING> {
  if (awaitsCopyNow(row, ctx.ref.run)) return store(ctx, row, log);
  if (row && row.falRequestId === requestId && row.status === S.COMPLETED) return row;
  const { config } = ctx.segue;
  // A user's cancel already asked fal (and noted why); anything else moved on without asking.
  const ended = !cancelAsked && row?.status !== S.CANCELED ? await releaseRequest(ctx.segue, requestId, 'SUPERSEDED', log) : false;
  if (!ended) await followToEnd(ctx.segue, requestId, Date.now() + config.fal.cancelGraceMs, log, ctx.signal);
  return row;
}
