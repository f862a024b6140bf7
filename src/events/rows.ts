import type { Transition } from '../generated/prisma/client.ts';
import { applyChange, type TransitionChange } from './messages.ts';

/**
 * The latest known row of the transitions this process streams, shared by every subscriber in it.
 * A change message carries only the columns it wrote: applied to the row one version older, it
 * gives exactly the row at the message's version, with no query. When the row is not known here,
 * or a message was missed (a gap in versions), the row is read once from PostgreSQL for all of
 * this process's subscribers. Bounded: the least recently used rows go first.
 */
export class TransitionRows {
  private readonly rows = new Map<string, Transition>();
  private readonly loading = new Map<string, Promise<Transition | null>>();

  constructor(
    private readonly load: (id: string) => Promise<Transition | null>,
    private readonly capacity = 10_000,
  ) {}

  /**
   * Keeps a row read elsewhere (a snapshot), unless the same version or a newer one is known: then
   * that one is returned, so every subscriber shares one object per row.
   */
  remember(row: Transition): Transition {
    const known = this.rows.get(row.id);
    if (known && known.version >= row.version) return known;
    this.put(row);
    return row;
  }

  /** The row at the message's version (or a newer one), or null when it no longer exists. */
  async resolve(message: TransitionChange): Promise<Transition | null> {
    const known = this.rows.get(message.id);
    if (message.full) return this.remember(message.changed as Transition);
    if (known && known.version >= message.version) return known;
    if (known && known.version === message.version - 1) {
      const row = applyChange(known, message);
      this.put(row);
      return row;
    }
    return this.fetch(message.id);
  }

  get size() {
    return this.rows.size;
  }

  private fetch(id: string): Promise<Transition | null> {
    let pending = this.loading.get(id);
    if (!pending) {
      pending = this.load(id)
        .then((row) => (row ? this.remember(row) : null))
        .finally(() => this.loading.delete(id));
      this.loading.set(id, pending);
    }
    return pending;
  }

  private put(row: Transition) {
    // Re-inserting moves the row to the end: the Map's order is the recency order.
    this.rows.delete(row.id);
    this.rows.set(row.id, row);
    if (this.rows.size > this.capacity) this.rows.delete(this.rows.keys().next().value!);
  }
}
