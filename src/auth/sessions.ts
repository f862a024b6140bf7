import type { Db } from '../db.ts';
import { activeKeyIds } from '../domain/api-keys.ts';
import type { PubSub } from '../events/pubsub.ts';
import type { Topics } from '../events/topics.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Principal } from './principal.ts';

/** Expiry is checked this often (in memory); streams end at most this late after it. */
const EXPIRY_TICK_MS = 1_000;
/**
 * Open connections' keys are re-read from PostgreSQL this often: the safety net for a revocation
 * whose Redis notice was lost (Redis down, or a key revoked by hand in the database).
 */
export const RECHECK_INTERVAL_MS = 3_000;

interface Session {
  principal: Principal;
  end(): void;
}

/** The message on `topics.credentials()`: these keys stop working now. */
export interface CredentialNotice {
  revokedKeyIds: string[];
}

/**
 * What this API instance holds open on behalf of a credential (WebSockets, subscription streams),
 * ended when the credential stops being valid: at once on a revocation notice from any instance
 * (Redis pub/sub), when it expires (checked every second), and, should a notice be lost, when
 * the periodic re-check finds its key revoked, expired or deleted (every RECHECK_INTERVAL_MS).
 */
export class CredentialSessions {
  private readonly sessions = new Set<Session>();
  private timer: NodeJS.Timeout | undefined;
  private subscription: Promise<number | null> | undefined;
  private ticks = 0;
  private checking = false;

  constructor(private readonly deps: { db: Db; pubsub: PubSub; topics: Topics; logger: Logger; metrics?: Pick<Metrics, 'credentialWatches'> }) {}

  /**
   * Starts listening for notices and the timers. Does not wait for Redis: an API instance starts
   * (and serves, reading keys from PostgreSQL) while Redis is down; `listening` resolves once
   * notices arrive.
   */
  start() {
    this.subscription = this.deps.pubsub
      .subscribe<CredentialNotice>(this.deps.topics.credentials(), (notice) => this.endKeys(new Set(notice.revokedKeyIds ?? [])))
      .catch((err: unknown) => {
        this.deps.logger.warn({ err }, 'not listening for credential notices; open connections are re-checked periodically');
        return null;
      });
    this.timer = setInterval(() => void this.tick(), EXPIRY_TICK_MS);
    this.timer.unref();
  }

  /** Resolves once revocation notices from other instances are heard. */
  async listening(): Promise<void> {
    await this.subscription;
  }

  /** Holds `end` until the returned function is called; `end` runs once the credential stops being valid. */
  track(principal: Principal, end: () => void): () => void {
    const session: Session = { principal, end };
    this.sessions.add(session);
    this.counted();
    return () => {
      if (this.sessions.delete(session)) this.counted();
    };
  }

  private counted() {
    this.deps.metrics?.credentialWatches.set(this.sessions.size);
  }

  get size() {
    return this.sessions.size;
  }

  private endWhere(pick: (session: Session) => boolean) {
    for (const session of [...this.sessions]) {
      if (!pick(session)) continue;
      this.sessions.delete(session);
      this.counted();
      try {
        session.end();
      } catch (err) {
        this.deps.logger.warn({ err }, 'ending a session failed');
      }
    }
  }

  private endKeys(keyIds: Set<string>) {
    if (keyIds.size > 0) this.endWhere((s) => s.principal.keyId !== null && keyIds.has(s.principal.keyId));
  }

  private async tick() {
    const now = Date.now();
    this.endWhere((s) => s.principal.expiresAt !== null && s.principal.expiresAt.getTime() <= now);
    this.ticks += 1;
    if (this.checking || this.ticks % Math.round(RECHECK_INTERVAL_MS / EXPIRY_TICK_MS) !== 0) return;
    const keyIds = [...new Set([...this.sessions].flatMap((s) => (s.principal.keyId ? [s.principal.keyId] : [])))];
    if (keyIds.length === 0) return;
    this.checking = true;
    try {
      const active = await activeKeyIds(this.deps.db, keyIds);
      this.endKeys(new Set(keyIds.filter((id) => !active.has(id))));
    } catch (err) {
      // PostgreSQL is down: keep connections as they are; requests on them are checked anyway.
      this.deps.logger.warn({ err }, 'could not re-check the keys of open connections');
    } finally {
      this.checking = false;
    }
  }

  /** Stops watching (shutdown); open sessions are closed by their own transports. */
  close() {
    clearInterval(this.timer);
    void this.subscription?.then((id) => id !== null && this.deps.pubsub.unsubscribe(id));
    this.sessions.clear();
    this.counted();
  }
}

/**
 * A stream that can be ended from outside: the next (or pending) read finishes as done and the
 * source is returned, which runs its cleanup (Redis unsubscribe, subscription slot).
 */
export function endable<T>(source: AsyncIterable<T>): { stream: AsyncIterableIterator<T>; end(): void } {
  const stream = new EndableStream(source[Symbol.asyncIterator]());
  return { stream, end: () => stream.end() };
}

const FINISHED: IteratorResult<never> = { value: undefined, done: true };

class EndableStream<T> implements AsyncIterableIterator<T> {
  private ended = false;
  // Only the read in progress can be ended early. (Racing every read against one long-lived
  // "ended" promise would leave a reaction, and the event it carried, on that promise per read.)
  private finishRead: ((result: IteratorResult<T>) => void) | null = null;

  constructor(private readonly iterator: AsyncIterator<T>) {}

  end() {
    if (this.ended) return;
    this.ended = true;
    this.finishRead?.(FINISHED);
    this.finishRead = null;
    void Promise.resolve(this.iterator.return?.()).catch(() => undefined);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.ended) return Promise.resolve(FINISHED);
    return new Promise<IteratorResult<T>>((resolve, reject) => {
      this.finishRead = resolve;
      this.iterator.next().then(
        (result) => {
          this.finishRead = null;
          resolve(result);
        },
        (error: unknown) => {
          this.finishRead = null;
          reject(error);
        },
      );
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.end();
    return Promise.resolve(FINISHED);
  }

  throw(error?: unknown): Promise<IteratorResult<T>> {
    this.end();
    return Promise.reject(error);
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}
