import { EndingStream, finished, type LiveFeed } from './live.ts';
import type { StreamDeps } from './transition-stream.ts';

/** What one kind of row stream does: shared by all of its subscribers, so none holds closures of its own. */
export interface RowView<Row, Message> {
  /** The row as it is now, read after the feed subscribed (so no change between is missed). */
  snapshot(deps: StreamDeps, id: string): Promise<Row>;
  /** The row a message makes of the last one sent; null when it brings nothing newer. */
  apply(message: Message, last: Row): Row | null;
  /** After this row, the stream ends. */
  ended(row: Row): boolean;
}

/**
 * One row, live, from a feed already subscribed: its snapshot, then each row a message makes,
 * until one of them ends it (batchProgress, generatedTransitionUpdated). Like TransitionStream, a
 * class with then() rather than an async generator: an idle subscriber waits here for as long as
 * it is connected, and a suspended generator (with the wrapper its cleanup needed) keeps its
 * whole frame where this keeps a few fields and one promise reaction. It closes its feed and runs
 * its cleanups once, however it ends: done, failed, or returned before it was read.
 */
export class RowStream<Row, Message> extends EndingStream<Row> {
  private last: Row | null = null;
  private over = false;

  constructor(
    private readonly deps: StreamDeps,
    private readonly id: string,
    private readonly view: RowView<Row, Message>,
    private readonly feed: LiveFeed<Message>,
  ) {
    super();
  }

  // Called again only once the previous call settled (as graphql-ws and every for await loop
  // do): one read of the snapshot or the feed at a time.
  next(): Promise<IteratorResult<Row>> {
    if (this.over) return Promise.resolve(this.end());
    // One then() with both handlers, not then().catch(): an idle subscriber waits here, and a
    // second promise would be one more object each.
    if (this.last === null) {
      return this.view.snapshot(this.deps, this.id).then(
        // Returned while the snapshot was read: it ended then, and sends nothing.
        (row) => (this.over ? this.end() : this.guarded(() => this.send(row))),
        (error: unknown) => this.fail(error),
      );
    }
    return this.feed.next().then(
      (result) => this.guarded(() => this.read(result)),
      (error: unknown) => this.fail(error),
    );
  }

  /** A message, or the feed's end: a row to send, or the next message when it brings nothing new. */
  private read(result: IteratorResult<Message>): IteratorResult<Row> | Promise<IteratorResult<Row>> {
    if (result.done || this.over) return this.end();
    const row = this.view.apply(result.value, this.last!);
    return row === null ? this.next() : this.send(row);
  }

  private send(row: Row): IteratorResult<Row> {
    this.last = row;
    // The last row goes out; the call after it finds the stream over.
    if (this.view.ended(row)) this.over = true;
    return { value: row, done: false };
  }

  protected end(): IteratorResult<Row> {
    this.over = true;
    this.feed.close();
    this.clean();
    return finished();
  }
}
