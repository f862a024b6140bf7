import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Turns for setting up live connections: at most `limit` at once, the rest wait in arrival order,
 * without a deadline. After an API restart every browser reconnects at the same moment; served
 * all at once they would each hold a credential check, a snapshot read and its rows in memory
 * together (and time out on the database pool); served in turns, each is quick and none is
 * refused for being part of the burst.
 */
export class SetupTurns {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  /** Waits for a turn; the returned function ends it (once, however often it is called). */
  async take(): Promise<() => void> {
    if (this.active < this.limit) this.active++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const next = this.waiting.shift();
      // The turn passes straight to the next in line (active stays the same).
      if (next) next();
      else this.active--;
    };
  }

  /** Runs `work` in a turn. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    const end = await this.take();
    try {
      return await work();
    } finally {
      end();
    }
  }

  /** How many wait for a turn now. */
  get queued() {
    return this.waiting.length;
  }
}

/** How long a new subscription may keep its setup turn waiting for its snapshot. */
export const SNAPSHOT_TURN_MS = 2_000;

/**
 * An HTTP request that may open a server-sent event stream (GraphQL over SSE) waits for a setup
 * turn before anything of it is read, as a WebSocket's connection and subscriptions do: after an
 * API restart, thousands of browsers reconnect at once, and served together each would hold its
 * request, context and snapshot read in the heap at the same time (10,000 at once exhausted a
 * 256 MB heap before one stream was set up). Waiting, a request holds only its socket. The turn
 * ends when `serve` calls the `setUp` it is given (the stream's first event, its snapshot, went
 * out), when the response ends or closes, or after SNAPSHOT_TURN_MS, whichever comes first. A
 * client that left while it waited is not served.
 */
export async function serveInTurn(
  turns: SetupTurns,
  req: IncomingMessage,
  res: ServerResponse,
  serve: (setUp: () => void) => unknown,
): Promise<void> {
  const end = await turns.take();
  if (req.socket.destroyed || res.writableEnded) return end();
  const timer = setTimeout(end, SNAPSHOT_TURN_MS);
  timer.unref();
  const setUp = () => {
    clearTimeout(timer);
    end();
  };
  res.once('close', setUp);
  res.once('finish', setUp);
  await serve(setUp);
}

/** Whether a request asks for server-sent events (a subscription over SSE, usually). */
export const acceptsEventStream = (req: IncomingMessage) => (req.headers.accept ?? '').toLowerCase().includes('text/event-stream');

/**
 * A stream that keeps its setup turn until its first value (a subscription's snapshot read), its
 * end, or `maxMs`, whichever comes first, then gives it back.
 */
export function holdUntilFirst<T>(stream: AsyncIterableIterator<T>, end: () => void, maxMs: number): AsyncIterableIterator<T> {
  const timer = setTimeout(end, maxMs);
  timer.unref();
  return new TurnHoldingStream(stream, () => {
    clearTimeout(timer);
    end();
  });
}

class TurnHoldingStream<T> implements AsyncIterableIterator<T> {
  constructor(
    private readonly stream: AsyncIterableIterator<T>,
    private end: (() => void) | null,
  ) {}

  private release() {
    const end = this.end;
    this.end = null;
    end?.();
  }

  next(): Promise<IteratorResult<T>> {
    const read = this.stream.next();
    if (this.end) read.then(() => this.release(), () => this.release());
    return read;
  }

  return(value?: unknown): Promise<IteratorResult<T>> {
    this.release();
    return Promise.resolve(this.stream.return?.(value)).then((result) => result ?? { value: undefined, done: true });
  }

  throw(error?: unknown): Promise<IteratorResult<T>> {
    this.release();
    return this.stream.throw ? this.stream.throw(error) : Promise.reject(error);
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}
