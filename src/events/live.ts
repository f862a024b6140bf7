import { AppError } from '../domain/errors.ts';
import type { PubSub } from './pubsub.ts';
import { SharedTexts } from './shared-texts.ts';

/**
 * Topic names, each kept once per process. Twice 10,000 subscribers' worth; names of topics no
 * longer listened to stay until it fills (about 3 MB of UUID-named topics; 512 characters each
 * at most).
 */
const topicTexts = new SharedTexts(20_000, 512);

/**
 * A live feed of one Redis channel or pattern for one subscriber: subscribed at Redis before
 * `subscribe` resolves (so a snapshot taken afterwards misses nothing), buffered per subscriber
 * (so a slow client never holds up the fan-out to others), and bounded: a subscriber that falls
 * `limit` events behind is ended with LIMIT_EXCEEDED and can subscribe again (a snapshot comes
 * first, so it loses no state).
 */
export class LiveFeed<T> implements AsyncIterableIterator<T> {
  private readonly buffer: T[] = [];
  private waiting: ((result: IteratorResult<T>) => void) | null = null;
  private failWaiting: ((error: unknown) => void) | null = null;
  private ended = false;
  private error: unknown = null;
  private subscriptionIds: number[] = [];

  private constructor(
    private readonly pubsub: PubSub,
    private readonly limit: number,
  ) {}

  static async subscribe<T>(pubsub: PubSub, triggers: Array<{ trigger: string; pattern: boolean }>, limit: number) {
    const feed = new LiveFeed<T>(pubsub, limit);
    // One callback for all of the feed's topics; each topic's name shared with the other
    // subscribers of this process (the pub/sub keeps it for as long as the feed is open).
    const push = (event: T) => feed.push(event);
    const subscribed = await Promise.allSettled(
      triggers.map(({ trigger, pattern }) => pubsub.subscribe<T>(topicTexts.of(trigger), push, { pattern })),
    );
    // Built at its size (not pushed to): it stays with the feed for as long as it is open.
    feed.subscriptionIds = subscribed.filter((result) => result.status === 'fulfilled').map((result) => result.value);
    // One topic failed (Redis down): the others are let go, not left subscribed with no feed.
    const failed = subscribed.find((result) => result.status === 'rejected');
    if (failed) {
      feed.close();
      throw failed.reason;
    }
    return feed;
  }

  push(event: T) {
    if (this.ended) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = this.failWaiting = null;
      resolve({ value: event, done: false });
      return;
    }
    if (this.buffer.length >= this.limit) {
      this.fail(new AppError('LIMIT_EXCEEDED', `This subscription fell ${this.limit} events behind and was ended; subscribe again.`));
      return;
    }
    this.buffer.push(event);
  }

  private fail(error: unknown) {
    this.error = error;
    this.close();
    if (this.failWaiting) {
      const reject = this.failWaiting;
      this.waiting = this.failWaiting = null;
      reject(error);
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.buffer.length > 0) return Promise.resolve({ value: this.buffer.shift()!, done: false });
    if (this.error) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failWaiting = reject;
    });
  }

  /** Ends the feed: pending and future next() calls finish. */
  close() {
    if (this.ended) return;
    this.ended = true;
    for (const id of this.subscriptionIds) this.pubsub.unsubscribe(id);
    if (this.waiting && !this.error) {
      const resolve = this.waiting;
      this.waiting = this.failWaiting = null;
      resolve({ value: undefined, done: true });
    }
  }

  return(): Promise<IteratorResult<T>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

/** The result of a stream that has ended. */
export const finished = <T>(): IteratorResult<T> => ({ value: undefined, done: true });

/**
 * A stream that runs its cleanups exactly once when it ends, however it ends: done, failed, or
 * returned by the transport before it was ever read. `withCleanup` adds to a stream of this kind
 * instead of wrapping it in another layer.
 */
export abstract class EndingStream<T> implements AsyncIterableIterator<T> {
  // Replaced rather than pushed to: an array that grew by push keeps room for 17 entries for as
  // long as an idle subscriber keeps it, where a concatenated one holds just its two or three.
  private cleanups: ReadonlyArray<() => void> = [];

  addCleanup(cleanup: () => void) {
    this.cleanups = this.cleanups.concat(cleanup);
  }

  protected clean() {
    const cleanups = this.cleanups;
    this.cleanups = [];
    for (const cleanup of cleanups) cleanup();
  }

  /** Ends the stream now (its own resources, then its cleanups), once however often called. */
  protected abstract end(): IteratorResult<T>;

  abstract next(): Promise<IteratorResult<T>>;

  return(): Promise<IteratorResult<T>> {
    return Promise.resolve(this.end());
  }

  throw(error?: unknown): Promise<IteratorResult<T>> {
    return this.fail(error);
  }

  protected fail(error: unknown): Promise<never> {
    this.end();
    return Promise.reject(error);
  }

  /**
   * One step of a read, run in a then() handler: whatever it throws (a message the stream cannot
   * use) ends the stream, since graphql-ws drops a subscription whose next() rejects without
   * calling return().
   */
  protected guarded(step: () => IteratorResult<T> | Promise<IteratorResult<T>>): IteratorResult<T> | Promise<IteratorResult<T>> {
    try {
      return step();
    } catch (error) {
      return this.fail(error);
    }
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

/**
 * Wraps a stream so that `cleanup` runs exactly once when it ends, however it ends: done,
 * failed, or returned by the transport before it was ever read (an async generator that never
 * started skips its own finally blocks). Wrapping a stream made here adds the cleanup to it
 * instead of adding a layer.
 */
export function withCleanup<T>(stream: AsyncIterator<T>, cleanup: () => void): AsyncIterableIterator<T> {
  if (stream instanceof EndingStream) {
    stream.addCleanup(cleanup);
    return stream as EndingStream<T>;
  }
  return new CleanupStream(stream, cleanup);
}

/**
 * A class, and then() rather than async functions: an idle subscription waits in every layer
 * around it, and per-object closures or a suspended async function cost far more memory than
 * prototype methods and one promise reaction.
 */
class CleanupStream<T> extends EndingStream<T> {
  constructor(
    private readonly stream: AsyncIterator<T>,
    cleanup: () => void,
  ) {
    super();
    this.addCleanup(cleanup);
  }

  protected end(): IteratorResult<T> {
    this.clean();
    return finished();
  }

  next(): Promise<IteratorResult<T>> {
    return this.stream.next().then(
      (result) => {
        if (result.done) this.clean();
        return result;
      },
      (error: unknown) => {
        this.clean();
        throw error;
      },
    );
  }

  override return(): Promise<IteratorResult<T>> {
    this.clean();
    return Promise.resolve(this.stream.return?.()).then((result) => result ?? { value: undefined, done: true });
  }

  override throw(error?: unknown): Promise<IteratorResult<T>> {
    this.clean();
    return this.stream.throw ? this.stream.throw(error) : Promise.reject(error);
  }
}
