/**
 * Work a worker process does itself as soon as it can (no queue round trip), `limit` runs at
 * once, with a waiting line of `maxWaiting` behind. What cannot wait here (the line is full, the
 * process is closing) is handed off (to a BullMQ queue, where any worker takes it); on close,
 * what still waits and what still runs after the grace is handed off too. Items are keyed: an
 * item already here is not taken twice.
 */
export interface LocalLineOptions<Item> {
  /** Runs at once. */
  limit: number;
  maxWaiting: number;
  /**
   * Items one run takes (default 1): a run that starts takes its item and up to `batch - 1` of
   * those waiting, oldest first. An idle line still starts each item at once, alone; only a
   * backlog goes in batches, where one run costs less than as many runs of one.
   */
  batch?: number;
  keyOf(item: Item): string;
  /** Does the work of one run; never throws (a failure is the runner's to route, e.g. to `handOff`). */
  run(items: Item[]): Promise<void>;
  handOff(item: Item): Promise<void>;
  /** An item about to wait: what it keeps while waiting (e.g. without a temporary file). */
  beforeWaiting?(item: Item): Promise<Item>;
}

export class LocalLine<Item> {
  private readonly running = new Map<string, { promise: Promise<void>; item: Item }>();
  private readonly waiting = new Map<string, Item>();
  /** Items readied for the line (`beforeWaiting`) that are not in it yet: until each is placed (or handed off). */
  private readonly arriving = new Map<string, Promise<void>>();
  private runs = 0;
  private closing = false;
  private readonly batch: number;

  constructor(private readonly options: LocalLineOptions<Item>) {
    this.batch = Math.max(1, Math.floor(options.batch ?? 1));
  }

  /** Takes an item: runs it now, lets it wait, or hands it off. */
  async offer(item: Item): Promise<void> {
    const key = this.options.keyOf(item);
    if (this.running.has(key) || this.waiting.has(key) || this.arriving.has(key)) return;
    const placed = this.place(key, item);
    if (placed !== 'wait') return placed;
    const { beforeWaiting } = this.options;
    if (!beforeWaiting) return void this.waiting.set(key, item);
    const arrival = this.arrive(key, item, beforeWaiting);
    this.arriving.set(key, arrival);
    try {
      return await arrival;
    } finally {
      this.arriving.delete(key);
    }
  }

  /** Readies an item to wait, then places it again: the line may have moved meanwhile (its runs ended, it closed). */
  private async arrive(key: string, item: Item, beforeWaiting: (item: Item) => Promise<Item>): Promise<void> {
    let readied: Item;
    try {
      readied = await beforeWaiting(item);
    } catch {
      // It could not be readied to wait here: the queue takes it as it is.
      return this.options.handOff(item);
    }
    const again = this.place(key, readied);
    if (again !== 'wait') return again;
    this.waiting.set(key, readied);
  }

  /** Starts the item's run or hands it off (the promise to await), or says it is to wait. */
  private place(key: string, item: Item): Promise<void> | 'wait' {
    const { limit, maxWaiting } = this.options;
    if (this.closing || limit === 0) return this.options.handOff(item);
    if (this.runs < limit) {
      this.start([[key, item]]);
      return Promise.resolve();
    }
    if (this.waiting.size >= maxWaiting) return this.options.handOff(item);
    return 'wait';
  }

  get size() {
    return this.running.size + this.waiting.size;
  }

  /** The next run's items from the waiting line, oldest first. */
  private takeWaiting(): Array<[string, Item]> {
    const taken: Array<[string, Item]> = [];
    for (const entry of this.waiting) {
      if (taken.length >= this.batch) break;
      taken.push(entry);
    }
    for (const [key] of taken) this.waiting.delete(key);
    return taken;
  }

  private start(entries: Array<[string, Item]>) {
    let ran: Promise<void>;
    try {
      ran = this.options.run(entries.map(([, item]) => item));
    } catch (error) {
      ran = Promise.reject(error);
    }
    this.runs += 1;
    const promise = ran
      .finally(() => {
        this.runs -= 1;
        for (const [key] of entries) this.running.delete(key);
        if (this.closing) return;
        const next = this.takeWaiting();
        if (next.length > 0) this.start(next);
      })
      .catch(() => undefined); // run() routes its own failures; nothing here may end the process
    for (const [key, item] of entries) this.running.set(key, { promise, item });
  }

  /**
   * Takes nothing more; hands off what waits, and what still runs after `graceMs` (it may finish
   * too). An item still being readied to wait is waited for within the same grace: once readied,
   * it is handed off, so its hand-off lands before the caller closes what hand-offs need.
   */
  async close(graceMs = 2_000): Promise<void> {
    this.closing = true;
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    await Promise.all(waiting.map((item) => this.options.handOff(item)));
    const arrivals = [...this.arriving.values()].map((arrival) => arrival.catch(() => undefined));
    if (this.running.size === 0 && arrivals.length === 0) return;
    const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.allSettled([...[...this.running.values()].map((r) => r.promise), ...arrivals]), timer]);
    await Promise.all([...this.running.values()].map(({ item }) => this.options.handOff(item)));
  }
}
