import { EndingStream, finished, type LiveFeed } from './live.ts';

/** What one kind of row stream does: shared by all of its subscribers, so none holds closures of its own. */
export interface RowView<Row, Message> {
  /** The row a message makes of the last one sent; null when it brings nothing newer. */
  apply(message: Message, last: Row): Row | null;
  /** After this row, the stream ends. */
  ended(row: Row): boolean;
  /** The row is gone (deleted): the stream ends with nothing more sent. */
  gone?(message: Message): boolean;
}

/**
 * One row, live, from a feed already subscribed: its snapshot (read after the feed subscribed, so
 * no change between is missed), then each row a message makes,
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
    private readonly view: RowView<Row, Message>,
    private readonly feed: LiveFeed<Message>,
    private snapshot: Row | null,
  ) {
    super();
  }

  // Called again only once the previous call settled (as graphql-ws and every for await loop
  // do): one read of the feed at a time.
  next(): Promise<IteratorResult<Row>> {
    if (this.over) return Promise.resolve(this.end());
    if (this.snapshot !== null) {
      const row = this.snapshot;
      // Let go of once sent; `last` holds what the next message applies to.
      this.snapshot = null;
      return Promise.resolve(this.guarded(() => this.send(row)));
    }
    // One then() with both handlers, not then().catch(): an idle subscriber waits here, and a
    // second promise would be one more object each.
    return this.feed.next().then(
      (result) => this.guarded(() => this.read(result)),
      (error: unknown) => this.fail(error),
    );
  }

  /** A message, or the feed's end: a row to send, or the next message when it brings nothing new. */
  private read(result: IteratorResult<Message>): IteratorResult<Row> | Promise<IteratorResult<Row>> {
    if (result.done || this.over || this.view.gone?.(result.value)) return this.end();
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
