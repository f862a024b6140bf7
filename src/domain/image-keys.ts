import type { Sql } from '../db.ts';

type Waiter = { resolve: (key: string) => void; reject: (error: unknown) => void };

/**
 * The storage keys of uploaded images, for showing a transition's frames (frontImageUrl,
 * tailImageUrl). A key never changes once the image is stored, so this process keeps the most
 * recently used `capacity` of them, and the ids asked for in one turn of the event loop are read
 * in one statement: a page of transitions, or one event shown to every subscriber of its batch.
 * A live event is shown from the row it carries; without this, each of its uploaded frames was a
 * read per event per subscriber.
 */
export class ImageKeys {
  private readonly keys = new Map<string, string>();
  private waiting = new Map<string, Waiter[]>();
  private scheduled = false;

  constructor(
    private readonly deps: { sql: Pick<Sql, 'query'> },
    private readonly capacity = 10_000,
  ) {}

  of(id: string): Promise<string> {
    const known = this.keys.get(id);
    if (known !== undefined) {
      // Re-inserted: the Map's order is the recency order.
      this.keys.delete(id);
      this.keys.set(id, known);
      return Promise.resolve(known);
    }
    return new Promise((resolve, reject) => {
      const list = this.waiting.get(id);
      if (list) list.push({ resolve, reject });
      else this.waiting.set(id, [{ resolve, reject }]);
      if (!this.scheduled) {
        this.scheduled = true;
        // After the turn's promise jobs: every field of the page or the event has asked by then.
        setImmediate(() => void this.load());
      }
    });
  }

  private async load() {
    const waiting = this.waiting;
    this.waiting = new Map();
    this.scheduled = false;
    try {
      const rows = await this.deps.sql.query<{ id: string; key: string | null }>(
        `SELECT "id", "key" FROM "Image" WHERE "id" = ANY($1::uuid[])`,
        [[...waiting.keys()]],
      );
      const found = new Map<string, string>();
      for (const { id, key } of rows) if (key !== null) found.set(id, key);
      for (const [id, key] of found) this.put(id, key);
      for (const [id, waiters] of waiting) {
        const key = found.get(id);
        // A transition's images are stored before it can be made: a missing key is a broken row.
        const outcome = key === undefined ? new Error(`Image ${id} has no stored file.`) : null;
        for (const w of waiters) {
          if (outcome) w.reject(outcome);
          else w.resolve(key!);
        }
      }
    } catch (error) {
      for (const waiters of waiting.values()) for (const w of waiters) w.reject(error);
    }
  }

  private put(id: string, key: string) {
    this.keys.delete(id);
    this.keys.set(id, key);
    if (this.keys.size > this.capacity) this.keys.delete(this.keys.keys().next().value!);
  }
}
