import { AppError } from '../domain/errors.ts';
import { loadTransition } from '../domain/state-machine.ts';
import type { BatchSnapshot } from '../domain/transitions.ts';
import type { Transition } from '../generated/prisma/client.ts';
import type { Segue } from '../runtime.ts';
import { EndingStream, finished, type LiveFeed } from './live.ts';
import type { TransitionFeedMessage } from './messages.ts';
import { TransitionRows } from './rows.ts';
import { SentVersions } from './sent-versions.ts';
import { sharedBatchSnapshot } from './snapshots.ts';

export type StreamDeps = Pick<Segue, 'db' | 'sql' | 'pubsub' | 'topics' | 'config' | 'generationJobs' | 'events' | 'logger'>;

const SENT_VERSIONS_KEPT = 10_000;

/**
 * How long a batch stream stays open after its batch ended, for the posters of its COMPLETED
 * transitions (made on the media queue right after each video, usually within a second).
 */
export const POSTER_GRACE_MS = 30_000;

/** The rows this process streams, shared by its subscribers (one per pub/sub connection: per process). */
const sharedRows = new WeakMap<object, TransitionRows>();
const rowsOf = (deps: StreamDeps) => {
  let rows = sharedRows.get(deps.pubsub);
  if (!rows) sharedRows.set(deps.pubsub, (rows = new TransitionRows((id) => loadTransition(deps, id))));
  return rows;
};

/** A batch deleted as it ended has nothing left to send: its stream ends. */
const goneAsEmpty = (error: unknown): BatchSnapshot => {
  if (error instanceof AppError && error.code === 'NOT_FOUND') return { rows: [], completedAt: null };
  throw error;
};

const awaitsPoster = (row: Transition) => row.status === 'COMPLETED' && !row.posterUrl;

/**
 * What a stream starts from, read after its feed was subscribed: the one transition, or the
 * batch's transitions and its end; nothing for an account-wide stream.
 */
export type StreamStart = { transition: Transition } | { batch: BatchSnapshot } | null;

/** Shared by every stream with nothing queued; never written to (a snapshot replaces it). */
const NOTHING_QUEUED: Transition[] = [];

/**
 * The rows of transitionUpdated, from a feed already subscribed: the snapshot (one transition,
 * or each of a batch's), then each change. Versions only go up: an event older than what was
 * already sent is dropped, so each transition's updates arrive in order. A batch stream ends when
 * the batch ends, after its last changes and the posters of its COMPLETED transitions (or
 * POSTER_GRACE_MS without them).
 *
 * A class with then() rather than an async generator: an idle subscriber waits here for as long
 * as it is connected, and a suspended generator keeps its whole frame (about 0.5 KB with its
 * request and context) where this keeps a few fields and one promise reaction. It ends itself
 * (the feed closed, its cleanups run), so it needs no wrapper around it either.
 */
export class TransitionStream extends EndingStream<Transition> {
  private readonly rows: TransitionRows;
  private readonly sent = new SentVersions(SENT_VERSIONS_KEPT);
  /** Rows read together (a snapshot) still to send, in order; drained as they are sent. */
  private queued: Transition[] = NOTHING_QUEUED;
  /** The stream ends once `queued` is drained. */
  private endAfterQueued = false;
  private ended = false;
  /** Once the batch has ended: the transitions still waiting for their poster; none left, it ends. */
  private posters: Set<string> | null = null;
  private grace: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: StreamDeps,
    private readonly accountId: string,
    private readonly feed: LiveFeed<TransitionFeedMessage>,
    private readonly scope: { transitionId: string } | { batchId: string } | null,
    private start: StreamStart,
  ) {
    super();
    this.rows = rowsOf(deps);
  }

  // Called again only once the previous call settled (as graphql-ws and every for await loop
  // do): one read of the feed at a time.
  next(): Promise<IteratorResult<Transition>> {
    if (this.ended) return Promise.resolve(finished());
    if (this.start) this.begin(this.start);
    while (this.queued.length > 0) {
      const row = this.queued.shift()!;
      // A drained array keeps its room: an idle subscriber holds an empty one instead.
      if (this.queued.length === 0) this.queued = NOTHING_QUEUED;
      if (this.sent.advance(row.id, row.version)) return Promise.resolve({ value: row, done: false });
    }
    if (this.endAfterQueued) return Promise.resolve(this.end());
    // One then() with both handlers, not then().catch(): an idle subscriber waits here, and a
    // second promise would be one more object each.
    return this.feed.next().then(
      (read) => this.guarded(() => this.read(read)),
      (error: unknown) => this.fail(error),
    );
  }

  /** What a subscriber gets first: the transition, or each of the batch's (and whether it has ended). */
  private begin(start: NonNullable<StreamStart>) {
    // Let go of once sent: an idle subscriber keeps no snapshot.
    this.start = null;
    if ('transition' in start) {
      this.queued = [this.rows.remember(start.transition)];
      return;
    }
    const rows = start.batch.rows.map((row) => this.rows.remember(row));
    this.endAfterQueued = start.batch.completedAt !== null && this.batchEnded(rows);
    this.queued = rows;
  }

  private read(read: IteratorResult<TransitionFeedMessage>): Promise<IteratorResult<Transition>> | IteratorResult<Transition> {
    if (read.done || this.ended) return this.end();
    const message = read.value;
    if (message.kind === 'transition-deleted') return this.deleted(message.id);
    // The batch went with its last items: nothing of it will ever change again.
    if (message.kind === 'batch-deleted') return this.scope && 'batchId' in this.scope ? this.end() : this.next();
    if (message.kind === 'transition') {
      // Already sent this version (or a newer one): nothing to resolve.
      if (this.sent.get(message.id) >= message.version) return this.next();
      return this.rows.resolve(message).then(
        (row) => this.guarded(() => this.changed(row)),
        (error: unknown) => this.fail(error),
      );
    }
    if (message.completedAt && !this.posters && this.scope && 'batchId' in this.scope) {
      // The batch ended: send whatever changes have not come through yet, then the posters.
      return sharedBatchSnapshot(this.deps, this.accountId, this.scope.batchId).catch(goneAsEmpty).then(
        (batch) =>
          this.guarded(() => {
            const rows = batch.rows.map((row) => this.rows.remember(row));
            // Ended as the read says: a late message of an end that a retry has undone since
            // (processes publish in any order) leaves the stream open. No rows (deleted, or left with
            // no items): ended.
            this.endAfterQueued = (batch.completedAt !== null || rows.length === 0) && this.batchEnded(rows);
            this.queued = rows;
            return this.next();
          }),
        (error: unknown) => this.fail(error),
      );
    }
    return this.next();
  }

  private changed(row: Transition | null): Promise<IteratorResult<Transition>> | IteratorResult<Transition> {
    if (this.ended) return finished();
    if (!row || row.accountId !== this.accountId) return this.next();
    const send = this.sent.advance(row.id, row.version);
    if (this.posters && !awaitsPoster(row)) {
      this.posters.delete(row.id);
      if (this.posters.size === 0) this.endAfterQueued = true;
    }
    return send ? { value: row, done: false } : this.next();
  }

  /**
   * A transition was deleted: a stream of that one transition ends (nothing of it will ever change
   * again); an ended batch's stream no longer waits for its poster.
   */
  private deleted(id: string): Promise<IteratorResult<Transition>> | IteratorResult<Transition> {
    if (this.scope && 'transitionId' in this.scope) return this.scope.transitionId === id ? this.end() : this.next();
    if (this.posters?.delete(id) && this.posters.size === 0) this.endAfterQueued = true;
    return this.next();
  }

  /** The batch has ended: it waits for the posters still to come, for POSTER_GRACE_MS at most. Says whether none is left. */
  private batchEnded(rows: Transition[]) {
    // Returned while the batch was read: nothing to wait for (and no timer left behind).
    if (this.ended) return true;
    this.posters = new Set(rows.filter(awaitsPoster).map((r) => r.id));
    this.grace = setTimeout(() => this.feed.close(), POSTER_GRACE_MS);
    return this.posters.size === 0;
  }

  protected end(): IteratorResult<Transition> {
    if (!this.ended) {
      this.ended = true;
      clearTimeout(this.grace);
      this.feed.close();
      this.clean();
    }
    return finished();
  }
}
