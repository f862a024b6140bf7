import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { estimateUsd } from '../domain/costs.ts';
import { retryTransition } from '../domain/generation.ts';
import { changeTransition, loadTransition, recordFalRequest, recordOrphanFalRequest, type ChangeData, type ChangeGuard } from '../domain/state-machine.ts';
import type { Transition } from '../generated/prisma/client.ts';
import { TransitionStatus as S, type TransitionStatus } from '../generated/prisma/enums.ts';
import type { Logger } from '../logger.ts';
import { webhookUrl } from '../providers/fal-webhook.ts';
import { isProviderError, ProviderError, type GenerationInput } from '../providers/provider.ts';
import type { GenerationJobData } from '../queue/generation-queue.ts';
import type { Segue } from '../runtime.ts';
import type { BudgetGuard } from './budget-guard.ts';
import { awaitsCopy, type Copier } from './copy-jobs.ts';
import type { Wakeups, Watch } from './wakeups.ts';
import { prepareImagesForSubmit } from './run-images.ts';
import type { PreparedImage } from '../domain/run-images.ts';

/** Why a worker aborts a running job: it is stopping (hand the job over) or lost the job's lock. */
export const ABORT_SHUTDOWN = 'shutdown';
export const ABORT_LOCK_LOST = 'lock-lost';

/** Errors that mean the fal request is over: the next attempt must submit again. */
const REQUEST_OVER = new Set([
  'FAL_JOB_ERROR',
  'FAL_VALIDATION',
  'FAL_BAD_OUTPUT',
  'FAL_REQUEST_LOST',
  'FAL_TIMEOUT',
  'PREVIEW_RENDER_FAILED',
  'IMAGE_UNAVAILABLE',
  'IMAGE_INVALID',
]);

/** What `track` returns once the result is handed to the copy queue: this job is done. */
const COPYING = Symbol('copying');

/** A pause that spends no attempt: the job goes back to the delayed set until `ms` from now. */
class Postpone extends Error {
  constructor(readonly ms: number, reason: string) {
    super(reason);
  }
}

class Aborted extends Error {
  constructor(readonly reason: unknown) {
    super(`aborted: ${String(reason)}`);
  }
}

export type RunOutcome = 'completed' | 'copying' | 'failed' | 'canceled' | 'stale' | 'lock-lost' | 'retried';

const inputOf = (t: Transition, images: { front: PreparedImage; tail: PreparedImage }): GenerationInput => ({
  prompt: t.prompt,
  negativePrompt: t.negativePrompt,
  frontImageUrl: images.front.url,
  tailImageUrl: images.tail.url,
  frontImageKey: images.front.key,
  tailImageKey: images.tail.key,
  durationSeconds: t.durationSeconds,
  transitionType: t.transitionType,
});

/**
 * Drives one transition through one generation run. The row decides what to do, so the job is
 * safe to run again at any moment (a crash, a stall, a Redis wipe): QUEUED is submitted; a row
 * with a fal request id is tracked, never resubmitted; a row that was submitted but has no id
 * (a submit whose answer was lost) waits for that answer and is never resubmitted blindly.
 *
 * The job stays active while its fal request is in flight, which is what lets BullMQ's global
 * concurrency cap fal requests across all workers. It holds no thread: it sleeps between polls
 * and wakes early when the row changes elsewhere (webhook, cancel).
 */
export class GenerationRun {
  private readonly log: Logger;
  private readonly ref: { id: string; run: number };
  /** Set right after a submit: fal has just said where the request stands, no need to ask again. */
  private justSubmitted = false;
  /** Changes of the row made elsewhere, caught from the start of the run on. */
  private watch: Watch | null = null;
  /** The run's images, readied before the claim (prepareAndClaim). */
  private images: { front: PreparedImage; tail: PreparedImage } | null = null;

  constructor(
    private readonly segue: Segue,
    private readonly wakeups: Wakeups,
    private readonly budgets: BudgetGuard,
    private readonly copier: Copier,
    private readonly job: Job<GenerationJobData>,
    private readonly token: string | undefined,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.ref = { id: job.data.transitionId, run: job.data.run };
    this.log = segue.logger.child({ transitionId: this.ref.id, run: this.ref.run, jobId: job.id });
  }

  async execute(): Promise<RunOutcome> {
    this.watch = this.wakeups.watch(this.ref.id);
    try {
      const claimed = await this.prepareAndClaim();
      return await this.drive(claimed ? await this.submit(claimed) : await this.load());
    } catch (error) {
      return this.onError(error);
    } finally {
      this.watch.close();
    }
  }

  private load() {
    return loadTransition(this.segue, this.ref.id);
  }

  private change(to: TransitionStatus, data: ChangeData, guard: ChangeGuard = {}) {
    return changeTransition(this.segue, this.ref, to, data, guard);
  }

  private checkAbort() {
    if (this.signal?.aborted) throw new Aborted(this.signal.reason);
  }

  private async drive(row: Transition | null): Promise<RunOutcome> {
    for (;;) {
      if (!row || row.run !== this.ref.run) return 'stale';
      switch (row.status) {
        case S.COMPLETED:
          return 'completed';
        case S.FAILED:
          // A failed job runs again only when someone retries it from the queue dashboard (which
          // clears its failedReason): a retry of the transition, as retryTransition does it (a new
          // run). A stalled rerun of a job that failed here first is not: it never pays again.
          if (this.job.attemptsMade > 0 && !this.job.failedReason) {
            await retryTransition(this.segue, row.accountId, row.id).catch((err) =>
              this.log.warn({ err }, 'dashboard retry refused'),
            );
            return 'retried';
          }
          return 'failed';
        case S.CANCELED:
          return 'canceled';
        case S.DRAFT:
          return 'stale';
        case S.QUEUED: {
          const claimed = await this.prepareAndClaim(row);
          row = claimed ? await this.submit(claimed) : await this.load();
          break;
        }
        case S.SUBMITTED:
        case S.IN_PROGRESS: {
          const next = row.falRequestId ? await this.track(row) : await this.awaitLostSubmit(row);
          if (next === COPYING) return 'copying';
          row = next;
          break;
        }
      }
    }
  }

  /**
   * Images first (checks before spending, images fal can reach: src/worker/run-images.ts), then
   * the claim. They are readied while the row is still QUEUED, so a crash or an outage while an
   * image is fetched or uploaded never leaves a claimed row without a request (which would read
   * as a submit whose answer was lost). A broken or unreachable image ends the run FAILED here,
   * before anything is submitted. Costs one read of the row per run.
   */
  private async prepareAndClaim(row?: Transition | null): Promise<Transition | null> {
    this.checkAbort();
    const queued = row ?? (await this.load());
    if (!queued || queued.status !== S.QUEUED || queued.run !== this.ref.run) return null;
    const images = await prepareImagesForSubmit(this.segue, queued);
    if (images instanceof ProviderError) return this.attemptFailed(images);
    this.images = images;
    return this.claim();
  }

  /** QUEUED → SUBMITTED, recording the intent to submit before anything goes to fal. */
  private claim() {
    this.checkAbort();
    return this.change(
      S.SUBMITTED,
      { attempts: 'increment', submittedAt: new Date(), falRequestId: null, queuePosition: null },
      { from: [S.QUEUED] },
    );
  }

  /** Exactly one submit to fal for a row this run has just claimed, then its request id on the row. */
  private async submit(claimed: Transition): Promise<Transition | null> {
    const { metrics, provider } = this.segue;
    const overBudget = await this.budgets.check(claimed);
    if (overBudget) return this.attemptFailed(overBudget);
    const images = this.images;
    if (!images) throw new Error('submit() without prepared images');
    const started = performance.now();
    let submitted: { requestId: string; queuePosition: number | null };
    try {
      // No abort signal: a submit in flight always runs to its answer, so its id is recorded.
      submitted = await provider.submit(inputOf(claimed, images), {
        webhookUrl: webhookUrl(this.segue.config, claimed.id, claimed.attempts),
      });
      metrics.falRequests.inc({ operation: 'submit', outcome: 'ok' });
    } catch (error) {
      metrics.falRequests.inc({ operation: 'submit', outcome: 'error' });
      const failure = toProviderError(error);
      if (failure.uncertain) {
        metrics.uncertainSubmits.inc();
        this.log.warn({ err: failure, batchId: claimed.batchId, attempt: claimed.attempts }, 'fal submit outcome unknown');
        // Only fal's webhook (which names this transition) could still tell what became of it.
        return this.segue.config.publicUrl ? this.awaitLostSubmit(claimed) : this.attemptFailed(uncertainFailure());
      }
      return this.attemptFailed(failure);
    } finally {
      metrics.falLatency.observe({ operation: 'submit' }, (performance.now() - started) / 1000);
    }
    const ledger = { model: this.segue.config.fal.model, costUsd: estimateUsd(this.segue.config.pricePerSecondUsd, claimed.durationSeconds) };
    const recorded = await recordFalRequest(this.segue, this.ref, submitted.requestId, submitted.queuePosition, ledger);
    if (recorded) {
      this.justSubmitted = true;
      this.log.info(
        { batchId: recorded.batchId, falRequestId: submitted.requestId, attempt: recorded.attempts, queuePosition: submitted.queuePosition },
        'submitted to fal',
      );
      return recorded;
    }
    const now = await this.load();
    if (now?.falRequestId === submitted.requestId) return now; // a webhook recorded it first
    if (now?.status === S.CANCELED) {
      // Canceled while the submit was on its way: stop the request it started (it may still bill).
      await recordOrphanFalRequest(this.segue, claimed, submitted.requestId, ledger);
      await provider.cancel(submitted.requestId).catch(() => undefined);
      this.log.info({ falRequestId: submitted.requestId }, 'canceled during submit; canceled at fal');
    }
    return now;
  }

  /** Polls fal (backing off, waking early on changes) until the request ends. */
  private async track(row: Transition): Promise<Transition | null | typeof COPYING> {
    const { config, provider, metrics } = this.segue;
    const requestId = row.falRequestId!;
    const deadline = (row.submittedAt ?? row.updatedAt).getTime() + config.fal.timeoutMs;
    const log = this.log.child({ batchId: row.batchId, falRequestId: requestId });
    // With webhooks fal tells us when it is done; polling is only the fallback, at the slow end.
    const firstInterval = config.publicUrl ? config.fal.pollMaxIntervalMs : config.fal.pollIntervalMs;
    let interval = firstInterval;
    // Right after a submit fal has just said where the request stands: wait before asking again.
    let nextPollAt = this.justSubmitted ? Date.now() + interval : 0;
    this.justSubmitted = false;
    metrics.tracking.inc();
    try {
      for (;;) {
        this.checkAbort();
        // A result is known (a webhook brought it, or a run before a crash): store it.
        if (row.falVideoUrl) return this.store(row, log);
        const now = Date.now();
        if (now < nextPollAt && now < deadline) {
          // Woken early only to notice the row ending elsewhere (webhook, cancel).
          const woke = await this.watch!.sleep(Math.min(nextPollAt, deadline) - now, row.version, this.signal);
          if (typeof woke === 'object') {
            const seen = woke.changed;
            // Ended elsewhere (a webhook completed it, a user canceled it): done, the row says how.
            if (seen && seen.run === row.run && !isRunning(seen.status as TransitionStatus)) {
              return { ...row, status: seen.status as TransitionStatus, version: seen.version };
            }
            const fresh = await this.load();
            if (!fresh || fresh.run !== row.run || fresh.falRequestId !== requestId || !isRunning(fresh.status)) return fresh;
            row = fresh;
          }
          continue;
        }
        if (Date.now() >= deadline) {
          await provider.cancel(requestId).catch(() => undefined);
          throw new ProviderError('FAL_TIMEOUT', `No result within ${config.fal.timeoutMs} ms; canceled at fal.`, {
            retryable: true,
          });
        }
        const polled = performance.now();
        const state = await provider.status(requestId, this.signal ? { signal: this.signal } : {});
        metrics.falLatency.observe({ operation: 'status' }, (performance.now() - polled) / 1000);
        const guard = { falRequestId: requestId };
        let changed: Transition | null = row;
        if (state.state === 'IN_QUEUE' && row.status === S.SUBMITTED && state.queuePosition !== row.queuePosition) {
          changed = await this.change(S.SUBMITTED, { queuePosition: state.queuePosition }, { ...guard, from: [S.SUBMITTED] });
        } else if (state.state === 'IN_PROGRESS' && row.status === S.SUBMITTED) {
          changed = await this.change(S.IN_PROGRESS, { startedAt: 'now-if-null', queuePosition: null }, guard);
          if (changed) log.info('in progress at fal');
          interval = firstInterval;
        } else if (state.state === 'COMPLETED') {
          const result = await provider.result(requestId, this.signal ? { signal: this.signal } : {});
          // Where the video is, on the row first: a crash before it is stored loses nothing.
          const recorded = await this.change(
            S.IN_PROGRESS,
            { falVideoUrl: result.videoUrl, startedAt: 'now-if-null', queuePosition: null },
            { ...guard, noResultYet: true },
          );
          return this.store(recorded ?? (await this.load()), log);
        }
        if (!changed) return this.load(); // moved on elsewhere (canceled, completed by a webhook)
        row = changed;

        nextPollAt = Date.now() + interval;
        interval = Math.min(Math.round(interval * 1.5), config.fal.pollMaxIntervalMs);
      }
    } catch (error) {
      const failure = isProviderError(error) ? error : null;
      if (failure && REQUEST_OVER.has(failure.code)) return this.attemptFailed(failure, log);
      if (failure) {
        // Our call failed, the request did not: keep it, and look again later without spending an attempt.
        metrics.falErrors.inc({ code: failure.code });
        log.warn({ err: failure }, 'fal status/result call failed; tracking continues');
        throw new Postpone(Math.max(failure.options.retryAfterMs ?? 0, config.fal.pollMaxIntervalMs), failure.message);
      }
      throw error;
    } finally {
      metrics.tracking.dec();
    }
  }

  /**
   * The provider has the video: the fal request is over. This worker's Copier stores it and
   * completes the transition, and this job ends, so its FAL_CONCURRENCY slot goes to the next
   * submit now rather than after the download.
   */
  private async store(row: Transition | null, log: Logger = this.log): Promise<Transition | null | typeof COPYING> {
    if (!awaitsCopy(row, this.ref.run)) return row;
    await this.copier.start(row, log);
    return COPYING;
  }

  /**
   * A row marked submitted with no request id: a submit whose answer never came (this process
   * lost it, or a worker died mid-submit). fal may have accepted it, so it is not sent again.
   * With webhooks, fal's callback (which names the transition) can still bring the id; otherwise,
   * once the original submit can no longer answer, the transition fails as FAL_SUBMIT_UNCERTAIN
   * for a person to retry knowingly.
   */
  private async awaitLostSubmit(row: Transition): Promise<Transition | null> {
    const { config } = this.segue;
    const submittedAt = (row.submittedAt ?? row.updatedAt).getTime();
    const until = config.publicUrl ? submittedAt + config.fal.timeoutMs : submittedAt + config.fal.submitTimeoutMs + 5_000;
    while (Date.now() < until) {
      this.checkAbort();
      await this.watch!.sleep(Math.min(config.fal.pollMaxIntervalMs, until - Date.now()), row.version, this.signal);
      this.checkAbort();
      const fresh = await this.load();
      if (!fresh || fresh.run !== row.run || fresh.status !== S.SUBMITTED || fresh.falRequestId) return fresh;
      row = fresh;
    }
    return this.attemptFailed(uncertainFailure());
  }

  /**
   * An attempt ended without a video. Retryable failures go back to QUEUED with the error kept and
   * are rescheduled by BullMQ (exponential backoff with jitter, Retry-After honoured); the last
   * attempt, or an error retrying cannot fix (422), ends the run FAILED with the code.
   */
  private async attemptFailed(failure: ProviderError, log: Logger = this.log): Promise<never> {
    const { metrics } = this.segue;
    metrics.falErrors.inc({ code: failure.code });
    const attempts = this.job.opts.attempts ?? 1;
    const final = !failure.retryable || this.job.attemptsMade + 1 >= attempts;
    const error = { errorCode: failure.code, errorMessage: failure.message.slice(0, 2000) };
    if (final) {
      const failed = await this.change(S.FAILED, { ...error, completedAt: new Date(), queuePosition: null }, {});
      if (failed) {
        metrics.finished.inc({ status: S.FAILED });
        log.warn({ code: failure.code, attempt: failed.attempts }, 'failed');
      }
      throw new UnrecoverableError(`${failure.code}: ${failure.message}`);
    }
    await this.change(S.QUEUED, { ...error, falRequestId: null, submittedAt: null, queuePosition: null, startedAt: null }, {});
    metrics.retries.inc({ code: failure.code });
    log.warn({ code: failure.code, attemptsMade: this.job.attemptsMade + 1 }, 'attempt failed; will retry');
    throw failure;
  }

  private async onError(error: unknown): Promise<RunOutcome> {
    if (error instanceof Aborted) {
      if (error.reason === ABORT_LOCK_LOST) return 'lock-lost';
      // Shutting down: hand the job to another worker at once, without spending an attempt.
      await this.job.moveToDelayed(Date.now(), this.token);
      this.log.info('handed over on shutdown');
      throw new DelayedError();
    }
    if (error instanceof Postpone) {
      await this.job.moveToDelayed(Date.now() + error.ms, this.token);
      throw new DelayedError();
    }
    if (error instanceof UnrecoverableError || isProviderError(error) || error instanceof DelayedError) throw error;
    // Our own infrastructure (PostgreSQL, Redis) failed: try again soon, spending no attempt.
    this.log.error({ err: error }, 'generation step failed; retrying in 5 s');
    await this.job.moveToDelayed(Date.now() + 5_000, this.token);
    throw new DelayedError();
  }
}

const uncertainFailure = () =>
  new ProviderError(
    'FAL_SUBMIT_UNCERTAIN',
    'The submit to fal got no answer, so fal may have accepted (and be billing) it. Segue does not resubmit it by ' +
      'itself, to never pay twice; retry this transition once you have checked your fal dashboard.',
    { retryable: false, uncertain: true },
  );

const isRunning = (status: TransitionStatus) => status === S.SUBMITTED || status === S.IN_PROGRESS;

const toProviderError = (error: unknown): ProviderError =>
  isProviderError(error)
    ? error
    : new ProviderError('FAL_NETWORK', error instanceof Error ? error.message : String(error), { retryable: true });
