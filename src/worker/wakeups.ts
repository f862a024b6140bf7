import type { Redis } from 'ioredis';
import type { Topics } from '../events/topics.ts';

/**
 * Lets a tracking loop sleep until its next poll *or* until its transition changes elsewhere (a
 * webhook completed it, a user canceled it), whichever comes first. One pattern subscription per
 * process feeds every waiter. The transition id is the channel's last segment, so messages are
 * never parsed here (a worker sees every event of every account).
 */
/** What a wake-up says of the row: enough to stop without reloading it when it has ended. */
export interface WakeInfo {
  status: string;
  run: number;
  version: number;
}

export class Wakeups {
  private readonly waiters = new Map<string, Set<(info: WakeInfo | null) => void>>();
  private started = false;

  constructor(
    private readonly subscriber: Redis,
    private readonly topics: Topics,
  ) {}

  async start() {
    if (this.started) return;
    this.started = true;
    this.subscriber.on('pmessage', (_pattern: string, channel: string, message: string) => {
      const id = channel.slice(channel.lastIndexOf(':') + 1);
      const set = this.waiters.get(id);
      if (!set) return;
      let info: WakeInfo | null = null;
      try {
        const row = (JSON.parse(message) as { transition?: WakeInfo }).transition;
        if (row) info = { status: row.status, run: row.run, version: row.version };
      } catch {
        /* a wake-up without details still wakes */
      }
      for (const wake of [...set]) wake(info);
    });
    await this.subscriber.psubscribe(this.topics.allTransitions());
  }

  /** Resolves after `ms`, on a change of `transitionId` (with what the event said), or when `signal` aborts. */
  sleep(transitionId: string, ms: number, signal?: AbortSignal): Promise<'timeout' | 'aborted' | { changed: WakeInfo | null }> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve('aborted');
      const set = this.waiters.get(transitionId) ?? new Set();
      this.waiters.set(transitionId, set);
      const done = (why: 'timeout' | 'aborted' | { changed: WakeInfo | null }) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        set.delete(onChange);
        if (set.size === 0) this.waiters.delete(transitionId);
        resolve(why);
      };
      const onChange = (info: WakeInfo | null) => done({ changed: info });
      const onAbort = () => done('aborted');
      const timer = setTimeout(() => done('timeout'), ms);
      set.add(onChange);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async stop() {
    if (this.started) await this.subscriber.punsubscribe().catch(() => undefined);
    this.started = false;
  }
}
