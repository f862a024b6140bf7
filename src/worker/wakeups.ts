import type { Transition } from '../generated/prisma/client.ts';
import type { RedisClient } from '../redis.ts';
import { applyChange, decodeMessage, type TransitionChange } from '../events/messages.ts';
import type { Topics } from '../events/topics.ts';

/** What a wake-up says of the row: enough to stop without reloading it when it has ended. */
export interface WakeInfo {
  status: string;
  run: number;
  version: number;
}

/** fal ended a request of the transition without a result, as its webhook said: the tracker of that request asks fal now. */
export interface RequestEnded {
  requestEnded: string;
}

export type WakeResult = 'timeout' | 'aborted' | RequestEnded | { changed: WakeInfo | null };

/** What a watch hears: a change of its row (null when its details could not be read), or that fal ended a request of it. */
type Heard = TransitionChange | null | RequestEnded;
const isRequestEnded = (heard: Heard | WakeInfo): heard is RequestEnded => heard !== null && 'requestEnded' in heard;

/**
 * A transition being watched: changes made elsewhere (a webhook completed it, a user canceled
 * it) are kept from the moment the watch starts, so one that lands between two steps of the
 * tracker, before it goes to sleep, is not missed.
 */
export interface Watch {
  /**
   * Resolves after `ms`, at once if a change newer than `knownVersion` came or fal ended the
   * request (since the last sleep), or when any of `signals` aborts. Listened to as they are,
   * rather than joined with AbortSignal.any: a tracker sleeps once per status fal pushes, and each
   * composite signal is an object, a weak reference in each source and a finalizer for the
   * garbage collector to clear, while the job's signal, one of the sources, lives for minutes.
   */
  sleep(ms: number, knownVersion: number, signals?: ReadonlyArray<AbortSignal | null | undefined>): Promise<WakeResult>;
  /**
   * `row` (a whole row as PostgreSQL returned it) brought up to the newest change heard, from the
   * changes' own messages: each carries the columns it wrote, so applied in order to the row one
   * version older it gives exactly the row at its version, with no query (as events/rows.ts does
   * for subscribers). Null when nothing newer came, or when one change in between was not heard
   * or could not be read: then the caller reads the row.
   */
  rowAfter(row: Transition): Transition | null;
  close(): void;
}

/** Changes kept per watch for rowAfter: a tracker takes them within moments, a few at a time. */
const KEPT_CHANGES = 16;

/**
 * Lets a tracking loop sleep until its next poll *or* until its transition changes elsewhere (or
 * a webhook says fal ended its request), whichever comes first. One pattern subscription per
 * process feeds every watch; the transition id is the channel's last segment, so only messages
 * for watched transitions are parsed.
 */
export class Wakeups {
  private readonly watches = new Map<string, Set<(heard: Heard) => void>>();
  private started = false;

  constructor(
    private readonly subscriber: RedisClient,
    private readonly topics: Topics,
  ) {}

  async start() {
    if (this.started) return;
    this.started = true;
    this.subscriber.on('pmessage', (_pattern: string, channel: string, message: string) => {
      const listeners = this.watches.get(channel.slice(channel.lastIndexOf(':') + 1));
      if (!listeners) return;
      let change: TransitionChange | null = null;
      try {
        const decoded = decodeMessage(message);
        if (decoded.kind === 'transition') change = decoded;
      } catch {
        /* a wake-up without details still wakes */
      }
      for (const listener of [...listeners]) listener(change);
    });
    const requestEnded = this.topics.requestEnded();
    this.subscriber.on('message', (channel: string, message: string) => {
      if (channel !== requestEnded) return;
      let notice: { transitionId?: unknown; requestId?: unknown };
      try {
        notice = JSON.parse(message);
      } catch {
        return;
      }
      if (typeof notice.transitionId !== 'string' || typeof notice.requestId !== 'string') return;
      for (const listener of [...(this.watches.get(notice.transitionId) ?? [])]) listener({ requestEnded: notice.requestId });
    });
    await Promise.all([this.subscriber.psubscribe(this.topics.allTransitions()), this.subscriber.subscribe(requestEnded)]);
  }

  watch(transitionId: string): Watch {
    let latest: WakeInfo | null = null;
    let unknown = false; // a change whose details could not be read
    // The changes heard, by version, for rowAfter.
    const changes = new Map<number, TransitionChange>();
    const forget = (upTo: number) => {
      for (const version of [...changes.keys()]) if (version <= upTo) changes.delete(version);
    };
    let unreadable = 0; // changes heard that could not be read, since the last rowAfter
    let ended: RequestEnded | null = null; // fal ended a request, heard since the last sleep
    let waiter: ((heard: WakeInfo | RequestEnded | null) => void) | null = null;
    const listener = (change: Heard) => {
      if (isRequestEnded(change)) {
        ended = change;
        return waiter?.(change);
      }
      const info = change && { status: change.status, run: change.run, version: change.version };
      if (info && (!latest || info.version > latest.version)) latest = info;
      if (change) {
        changes.set(change.version, change);
        if (changes.size > KEPT_CHANGES) changes.delete(Math.min(...changes.keys()));
      } else {
        unknown = true;
        unreadable += 1;
      }
      waiter?.(info);
    };
    const set = this.watches.get(transitionId) ?? new Set();
    set.add(listener);
    this.watches.set(transitionId, set);
    return {
      sleep: (ms, knownVersion, given = []) =>
        new Promise((resolve) => {
          // What the caller already holds needs no keeping (its own changes coming back, mostly).
          forget(knownVersion);
          const signals = given.filter((signal): signal is AbortSignal => !!signal);
          if (signals.some((signal) => signal.aborted)) return resolve('aborted');
          if (latest && latest.version > knownVersion) return resolve({ changed: latest });
          if (unknown) {
            unknown = false;
            return resolve({ changed: null });
          }
          if (ended) {
            const heard = ended;
            ended = null;
            return resolve(heard);
          }
          const done = (why: WakeResult) => {
            clearTimeout(timer);
            for (const signal of signals) signal.removeEventListener('abort', onAbort);
            waiter = null;
            resolve(why);
          };
          const onAbort = () => done('aborted');
          const timer = setTimeout(() => done('timeout'), ms);
          waiter = (info) => {
            if (isRequestEnded(info)) {
              ended = null;
              return done(info);
            }
            if (info && info.version <= knownVersion) return; // our own change coming back
            unknown = false;
            done({ changed: info });
          };
          for (const signal of signals) signal.addEventListener('abort', onAbort, { once: true });
        }),
      rowAfter: (row) => {
        let current = row;
        for (let change = changes.get(row.version + 1); change; change = changes.get(current.version + 1)) {
          current = applyChange(current, change);
        }
        forget(current.version);
        const complete = unreadable === 0 && current !== row && (!latest || current.version >= latest.version);
        unreadable = 0;
        return complete ? current : null;
      },
      close: () => {
        set.delete(listener);
        if (set.size === 0) this.watches.delete(transitionId);
      },
    };
  }

  async stop() {
    if (this.started) {
      await Promise.all([this.subscriber.punsubscribe(this.topics.allTransitions()), this.subscriber.unsubscribe(this.topics.requestEnded())]).catch(
        () => undefined,
      );
    }
    this.started = false;
  }
}
