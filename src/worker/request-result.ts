import { markEnded, recordResult } from '../domain/ledger.ts';
import type { ChangeGuard } from '../domain/state-machine.ts';
import type { Transition } from '../generated/prisma/client.ts';
import type { Logger } from '../logger.ts';
import { isProviderError, type ProviderError, type RequestState } from '../providers/provider.ts';
import { attemptFailed, finalFailure } from './attempts.ts';
import { awaitsCopy } from './copy-jobs.ts';
import { timeoutMessage, type CancelAsked } from './request-limits.ts';
import { checkAbort, loadRow, rowAfterChange, type RunContext } from './run-context.ts';

// fal has finished a run's request: its result, read from fal or brought by its webhook, goes to
// the copier, or fal's own error ends the attempt.

/** What `track` returns once the result is handed to the copier: this job is done. */
export const COPYING = Symbol('copying');

/**
 * fal has finished the request: its slot is free, whatever the result says. Reads the result
 * (a failed read is only the read's: tried again, never a new submit) and either hands the video
 * to the copier, or ends the attempt with fal's own error for the request.
 */
export async function finish(
  ctx: RunContext,
  row: Transition,
  state: Extract<RequestState, { state: 'COMPLETED' }>,
  cancel: CancelAsked | null,
  log: Logger,
  /** The ledger's note that fal ended it, when made already (while a webhook was awaited). */
  noted?: Promise<unknown>,
): Promise<Transition | null | typeof COPYING> {
  const { config, metrics, provider } = ctx.segue;
  const requestId = row.falRequestId!;
  const giveUpAt = Date.now() + config.fal.resultTimeoutMs;
  let failed = state.failed === true;
  // The row as last heard, while a failed read waits to be tried again.
  const heard: Heard = { row, version: row.version };
  const guard = { falRequestId: requestId };
  // fal is done with it: its slot frees now, and from now on a cancel would throw away a paid
  // video. Noted while the result is read, so it costs no wait. Noted while a webhook was awaited:
  // only a failure's outcome is added (the slot is free already), and a note that failed then is
  // made again (the database may be back).
  let ended: Promise<unknown> = !noted
    ? noteEnded(ctx, requestId, failed)
    : handled(noted.then(() => (failed ? markEnded(ctx.segue, requestId, 'ERROR') : null), () => noteEnded(ctx, requestId, failed)));
  for (let delay = config.fal.pollIntervalMs; ; delay = Math.min(delay * 2, config.fal.pollMaxIntervalMs)) {
    checkAbort(ctx);
    try {
      const result = await provider.result(requestId, { failed, ...(ctx.signal ? { signal: ctx.signal } : {}) });
      await ended;
      // Where the video is, on the row and in the ledger at once: a crash before it is stored loses nothing.
      const recorded = await recordResult(ctx.segue, requestId, result.videoUrl);
      // Recorded first by the webhook: its change, once heard, tells the row with no query.
      const told = recorded.row ? null : ctx.watch.rowAfter(heard.row);
      return store(ctx, recorded.row ?? (told?.falVideoUrl ? told : await loadRow(ctx)), log);
    } catch (error) {
      await ended;
      ended = Promise.resolve();
      const failure = asProviderError(error);
      if (failure.requestOver) {
        await markEnded(ctx.segue, requestId, cancel ? 'CANCELED' : 'ERROR');
        await provider.forget?.(requestId).catch(() => undefined);
        // fal stopped it after Segue's cancel: the run ends with the limit it overran.
        if (cancel) return attemptFailed(ctx, finalFailure(cancel.code, timeoutMessage(ctx, cancel.code)), log, { guard, attempt: row.attempts });
        // A result fal no longer has (results are kept about an hour) was paid for: not again by itself.
        const lost = failure.code === 'FAL_REQUEST_LOST' ? finalFailure('FAL_RESULT_UNAVAILABLE', `fal finished the request but no longer has its result: ${failure.message}`) : failure;
        return attemptFailed(ctx, lost, log, { guard, attempt: row.attempts });
      }
      metrics.falErrors.inc({ code: failure.code });
      if (Date.now() + delay > giveUpAt) {
        const unread = finalFailure(
          'FAL_RESULT_UNAVAILABLE',
          `fal finished the request but its result could not be read for ${config.fal.resultTimeoutMs} ms: ${failure.message}`,
        );
        // Its slot was freed as fal ended it (noteEnded above).
        return failUnlessVideo(ctx, unread, log, { guard, attempt: row.attempts });
      }
      log.warn({ err: failure }, 'reading the result from fal failed; trying again (no new submit)');
      // fal's Retry-After is honoured within the bound: a last read at giveUpAt, then the end above.
      // The wait ends early when the webhook speaks: it may bring the video, or say the request
      // failed (fal's older status bodies do not, and a failure's 5xx then reads as a passing fault).
      const ms = Math.min(Math.max(delay, failure.options.retryAfterMs ?? 0), Math.max(0, giveUpAt - Date.now()));
      const spoke = await betweenReads(ctx, requestId, heard, ms);
      if (spoke === 'failed') {
        if (!failed) log.info("fal's webhook says the request failed; its result is read as a failure's");
        failed = true;
      } else if (spoke) return store(ctx, spoke, log);
    }
  }
}

/**
 * Ends the attempt with `failure`, but only while the row holds no result: a webhook that recorded
 * the video a moment ago wins, and the video is stored (a FAILED row holding a paid video would be
 * taken by nobody). `onVideo` runs first then (the ledger ended with the webhook's statement).
 */
export function failUnlessVideo(
  ctx: RunContext,
  failure: ProviderError,
  log: Logger,
  { guard, attempt, onVideo }: { guard: ChangeGuard; attempt: number; onVideo?: () => void },
): Promise<Transition | null | typeof COPYING> {
  return attemptFailed(ctx, failure, log, { guard: { ...guard, noResultYet: true }, attempt }).catch(async (error: unknown) => {
    // The attempt's own ending is what BullMQ hears, whatever the look at the row meets.
    const now = await loadRow(ctx).catch(() => null);
    if (!awaitsCopy(now, ctx.ref.run) || now.falRequestId !== guard.falRequestId) throw error;
    log.info('fal delivered the video as the run was giving up on it; storing it');
    onVideo?.();
    return store(ctx, now, log);
  });
}

/** The run's row as last heard (a version may be heard before its row is read). */
interface Heard {
  row: Transition;
  version: number;
}

/**
 * Waits `ms` before a failed result read is tried again, listening to the row's watch: the row,
 * once the webhook recorded its video (with the ledger's end, in the same statement); 'failed',
 * once fal's webhook said the request failed; null when the time is up or the job stops.
 */
async function betweenReads(ctx: RunContext, requestId: string, heard: Heard, ms: number): Promise<Transition | 'failed' | null> {
  const until = Date.now() + ms;
  for (let left = ms; left > 0; left = until - Date.now()) {
    const woke = await ctx.watch.sleep(left, heard.version, [ctx.signal]);
    if (typeof woke !== 'object') return null;
    if ('requestEnded' in woke) {
      if (woke.requestEnded === requestId) return 'failed';
      continue;
    }
    if (woke.changed) heard.version = Math.max(heard.version, woke.changed.version);
    const fresh = await rowAfterChange(ctx, woke, heard.row);
    if (!fresh) continue;
    heard.row = fresh;
    heard.version = Math.max(heard.version, fresh.version);
    if (fresh.falVideoUrl && fresh.falRequestId === requestId) return fresh;
  }
  return null;
}

/**
 * The provider has the video: the fal request is over. This worker's Copier stores it and
 * completes the transition, and this job ends, so its FAL_CONCURRENCY slot goes to the next
 * submit now rather than after the download.
 */
export async function store(ctx: RunContext, row: Transition | null, log: Logger): Promise<Transition | null | typeof COPYING> {
  if (!awaitsCopy(row, ctx.ref.run)) return row;
  await ctx.copier.start(row, log);
  return COPYING;
}

/**
 * fal's stream has said a request finished, and fal sends its webhook as it finishes: the API
 * records the result from it and wakes this run with the row (no query). Until FAL_WEBHOOK_WAIT_MS
 * has passed, the run waits for that rather than read the result itself, which would cost a call
 * to fal and a statement per video, the same work twice for every request that ends. A failed
 * request (by its status, or by a webhook that said so first), and one Segue asked fal to cancel,
 * are read at once: what fal says decides how the run ends. Without webhooks (no PUBLIC_URL), or
 * with a wait of 0, every result is read at once.
 */
export interface WebhookDue {
  until: number;
  /** What the stream said: the result is read with it when the wait is over. */
  state: Extract<RequestState, { state: 'COMPLETED' }>;
}

export const awaitsWebhook = (ctx: RunContext, state: Extract<RequestState, { state: 'COMPLETED' }>, cancel: CancelAsked | null): boolean =>
  !!ctx.segue.config.publicUrl && ctx.segue.config.fal.webhookWaitMs > 0 && state.failed !== true && !cancel;

/**
 * Notes in the ledger that fal ended the request; once noted, a staged job of this process takes
 * its slot at once. Handled now: it is awaited later or not at all, and a database that fails
 * meanwhile (while the run is aborted, say) cannot end the process with an unhandled rejection.
 */
export function noteEnded(ctx: RunContext, requestId: string, failed: boolean): Promise<unknown> {
  return handled(markEnded(ctx.segue, requestId, failed ? 'ERROR' : null).then(() => ctx.claims.slotFreed()));
}

/** The promise, with its rejection handled now (it is still seen by whoever awaits it). */
export function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

/** awaitsCopy as a plain test: a false answer says nothing about the row's type. */
export const awaitsCopyNow = (row: Transition | null, run: number): boolean => awaitsCopy(row, run);

export const asProviderError = (error: unknown): ProviderError => {
  if (isProviderError(error)) return error;
  throw error;
};
