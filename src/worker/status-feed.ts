import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { RequestState } from '../providers/provider.ts';
import { pause } from './run-context.ts';

/**
 * Why a news signal fires. Given, so that abort() does not build a DOMException and its stack for
 * every status fal pushes (a few microseconds each, 0.1-0.2 s of a worker's CPU per 1,000
 * requests in profiles of bench/makespan.ts); nothing reads it.
 */
const NEWS = 'news';
/** Why a stream is cut: given, for the same reason. */
const STOPPED = 'stopped';
/**
 * How long a stream whose request fal has ended may take to bring COMPLETED once the tracker is
 * done (a webhook told it first); then readStatusStream reads its end (DRAIN_MS at most). Read to
 * its end, its connection goes back to the pool for the next request's stream; cut, it is lost,
 * and with fal a new connection is a TLS handshake.
 */
const FINISH_MS = 1_000;
/** Streams that fail this many times in a row without one event: the request is polled instead. */
const FAILURES_BEFORE_POLLING = 3;
/** A dropped stream is reopened after this, doubling per failure in a row (up to the max). */
const REOPEN_DELAY_MS = 100;
const REOPEN_MAX_DELAY_MS = 2_000;

/**
 * A request's status as fal pushes it on its status stream, kept open for the tracker: reopened
 * when it drops, goes silent or closes before COMPLETED (never taken as the end), and given up
 * for polling when it keeps failing (counted in segue_fal_status_stream_fallbacks_total). The
 * tracker takes the latest status when it is ready for it: positions that moved meanwhile are
 * folded into the newest, so a busy fal queue costs one write per step, not one per move.
 */
export class StatusFeed {
  private latest: RequestState | null = null;
  /** The last status any stream brought (kept after the tracker took it). */
  private lastSeen: RequestState | null = null;
  private wake: AbortController | null = null;
  private readonly stopper = new AbortController();
  private ended = false;
  /** The current stream has answered (its connection is up): it may be let finish (see close). */
  private streaming = false;
  /** Cuts the stream of a request that ended if it has not finished by itself (see close). */
  private finishing: NodeJS.Timeout | undefined;
  /** The stream kept failing: the tracker polls this request from now on. */
  pollingInstead = false;

  constructor(
    /** Opens one stream: `onState` gets each status; resolves when it closes, rejects when it fails. */
    private readonly open: (signal: AbortSignal, onState: (state: RequestState) => void) => Promise<void>,
    private readonly deps: { metrics: Metrics; log: Logger },
  ) {}

  start(): this {
    void this.run();
    return this;
  }

  /** The newest status not yet taken, if any. */
  take(): RequestState | null {
    const state = this.latest;
    this.latest = null;
    return state;
  }

  /** A signal that fires when something new arrives (a status, or the switch to polling). */
  news(): AbortSignal {
    this.wake = new AbortController();
    if (this.latest || this.pollingInstead) this.wake.abort(NEWS);
    return this.wake.signal;
  }

  /**
   * The tracker is done with the request. When fal has ended it (`falEnded`) and its stream has
   * answered, the stream has only COMPLETED and its end left to send: it is let finish (see
   * FINISH_MS) rather than cut. Otherwise it is cut now: one still opening is not let reach fal
   * for nothing.
   */
  close(falEnded = false) {
    this.ended = true;
    if (!falEnded || !this.streaming) return this.stopper.abort(STOPPED);
    this.finishing ??= setTimeout(() => this.stopper.abort(STOPPED), FINISH_MS);
    this.finishing.unref();
  }

  private push(state: RequestState) {
    this.lastSeen = state;
    this.latest = state;
    this.wake?.abort(NEWS);
  }

  private async run() {
    const { metrics, log } = this.deps;
    let failures = 0;
    while (!this.ended) {
      metrics.statusStreams.inc();
      try {
        let completed = false;
        await this.open(this.stopper.signal, (state) => {
          if (completed) return;
          this.streaming = true;
          // Only news proves the stream works: one that opens, repeats what is known and closes
          // again (a proxy cutting it) keeps counting towards polling.
          if (!sameState(state, this.lastSeen)) failures = 0;
          this.push(state);
          if (state.state === 'COMPLETED') completed = this.ended = true;
        });
        if (completed || this.ended) return;
        // fal closes a stream after COMPLETED only: an earlier close is a drop, not the end.
        throw new Error('the status stream closed before COMPLETED');
      } catch (err) {
        this.streaming = false;
        if (this.ended) return;
        failures += 1;
        if (failures >= FAILURES_BEFORE_POLLING) {
          log.warn({ err }, 'fal status streams keep failing for this request; polling it instead');
          metrics.statusStreamFallbacks.inc();
          this.pollingInstead = true;
          this.wake?.abort(NEWS);
          return;
        }
        log.debug({ err }, 'fal status stream dropped; reopening it');
        await pause(Math.min(REOPEN_MAX_DELAY_MS, REOPEN_DELAY_MS * 2 ** (failures - 1)), this.stopper.signal);
      } finally {
        // Ended (or dropped): there is no stream left to cut.
        this.streaming = false;
        clearTimeout(this.finishing);
        metrics.statusStreams.dec();
      }
    }
  }
}

const sameState = (a: RequestState, b: RequestState | null | undefined) =>
  !!b && a.state === b.state && (a.state !== 'IN_QUEUE' || a.queuePosition === (b as { queuePosition?: number | null }).queuePosition);
