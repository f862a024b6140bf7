/**
 * Work a worker process does itself as soon as it can (no queue round trip), `limit` at once,
 * with a waiting line of `maxWaiting` behind. What cannot wait here (the line is full, the
 * process is closing) is handed off (to a BullMQ queue, where any worker takes it); on close,
 * what still waits and what still runs after the grace is handed off too. Items are keyed: an
 * item already here is not taken twice.
 */
export interface LocalLineOptions<Item> {
  limit: number;
  maxWaiting: number;
  keyOf(item: Item): string;
  /** Does the work; never throws (a failure is the runner's to route, e.g. to `handOff`). */
  run(item: Item): Promise<void>;
  handOff(item: Item): Promise<void>;
  /** An item about to wait: what it keeps while waiting (e.g. without a temporary file). */
  beforeWaiting?(item: Item): Promise<Item>;
}

export class LocalLine<Item> {
  private readonly running = new Map<string, { promise: Promise<void>; item: Item }>();
  private readonly waiting = new Map<string, Item>();
  private closing = false;

  constructor(private readonly options: LocalLineOptions<Item>) {}

  /** Takes an item: runs it now, lets it wait, or hands it off. */
  async offer(item: Item): Promise<void> {
    const { limit, maxWaiting, keyOf } = this.options;
    const key = keyOf(item);
    if (this.running.has(key) || this.waiting.has(key)) return;
    if (this.closing || limit === 0) return this.options.handOff(item);
    if (this.running.size < limit) return this.start(key, item);
    if (this.waiting.size >= maxWaiting) return this.options.handOff(item);
    this.waiting.set(key, this.options.beforeWaiting ? await this.options.beforeWaiting(item) : item);
  }

  get size() {
    return this.running.size + this.waiting.size;
  }

  private start(key: string, item: Item) {
    const promise = this.options.run(item).finally(() => {
      this.running.delete(key);
      if (this.closing) return;
      const next = this.waiting.entries().next();
      if (!next.done) {
        this.waiting.delete(next.value[0]);
        this.start(next.value[0], next.value[1]);
      }
    }).catch(() => undefined); // run() routes its own failures; nothing here may end the process
    this.running.set(key, { promise, item });
  }

  /** Takes nothing more; hands off what waits, and what still runs after `graceMs` (it may finish too). */
  async close(graceMs = 2_000): Promise<void> {
    this.closing = true;
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    await Promise.all(waiting.map((item) => this.options.handOff(item)));
    if (this.running.size === 0) return;
    const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.allSettled([...this.running.values()].map((r) => r.promise)), timer]);
    await Promise.all([...this.running.values()].map(({ item }) => this.options.handOff(item)));
  }
}
