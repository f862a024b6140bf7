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
