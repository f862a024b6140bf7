import type { RedisClient } from '../redis.ts';
import { decodeMessage } from '../events/messages.ts';
import type { Topics } from '../events/topics.ts';

/** What a wake-up says of the row: enough to stop without reloading it when it has ended. */
export interface WakeInfo {
  status: string;
  run: number;
  version: number;
}

export type WakeResult = 'timeout' | 'aborted' | { changed: WakeInfo | null };

/**
 * A transition being watched: changes made elsewhere (a webhook completed it, a user canceled
 * it) are kept from the moment the watch starts, so one that lands between two steps of the
 * tracker, before it goes to sleep, is not missed.
 */
export interface Watch {
  /** Resolves after `ms`, at once if a change newer than `knownVersion` came, or when `signal` aborts. */
  sleep(ms: number, knownVersion: number, signal?: AbortSignal): Promise<WakeResult>;
  close(): void;
}

/**
 * Lets a tracking loop sleep until its next poll *or* until its transition changes elsewhere,
 * whichever comes first. One pattern subscription per process feeds every watch; the transition
 * id is the channel's last segment, so only messages for watched transitions are parsed.
 */
export class Wakeups {
  private readonly watches = new Map<string, Set<(info: WakeInfo | null) => void>>();
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
      let info: WakeInfo | null = null;
      try {
        const change = decodeMessage(message);
        if (change.kind === 'transition') info = { status: change.status, run: change.run, version: change.version };
      } catch {
        /* a wake-up without details still wakes */
      }
      for (const listener of [...listeners]) listener(info);
    });
    await this.subscriber.psubscribe(this.topics.allTransitions());
  }

  watch(transitionId: string): Watch {
    let latest: WakeInfo | null = null;
    let unknown = false; // a change whose details could not be read
    let waiter: ((info: WakeInfo | null) => void) | null = null;
    const listener = (info: WakeInfo | null) => {
      if (info && (!latest || info.version > latest.version)) latest = info;
      if (!info) unknown = true;
      waiter?.(info);
    };
    const set = this.watches.get(transitionId) ?? new Set();
    set.add(listener);
    this.watches.set(transitionId, set);
    return {
      sleep: (ms, knownVersion, signal) =>
        new Promise((resolve) => {
          if (signal?.aborted) return resolve('aborted');
          if (latest && latest.version > knownVersion) return resolve({ changed: latest });
          if (unknown) {
            unknown = false;
            return resolve({ changed: null });
          }
          const done = (why: WakeResult) => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            waiter = null;
            resolve(why);
          };
          const onAbort = () => done('aborted');
          const timer = setTimeout(() => done('timeout'), ms);
          waiter = (info) => {
            if (info && info.version <= knownVersion) return; // our own change coming back
            unknown = false;
            done({ changed: info });
          };
          signal?.addEventListener('abort', onAbort, { once: true });
        }),
      close: () => {
        set.delete(listener);
        if (set.size === 0) this.watches.delete(transitionId);
      },
    };
  }

  async stop() {
    if (this.started) await this.subscriber.punsubscribe().catch(() => undefined);
    this.started = false;
  }
}
