import type { Sql } from '../db.ts';

type Pending = { promise: Promise<string>; resolve: (key: string) => void; reject: (error: unknown) => void };

/**
 * The storage keys of uploaded images, for showing a transition's frames (frontImageUrl,
 * tailImageUrl). A key never changes once the image is stored, so this process keeps the most
 * recently used `capacity` of them, and the ids asked for in one turn of the event loop are read
 * in one statement: a page of transitions, or one event shown to every subscriber of its batch.
 * An id asked for again while its read is under way waits for that read. A live event is shown
 * from the row it carries; without this, each of its uploaded frames was a read per event per
 * subscriber.
 */
export class ImageKeys {
  private readonly keys = new Map<string, string>();
  /** Ids asked for and not yet answered: those of the next read, and those of the reads under way. */
  private readonly pending = new Map<string, Pending>();
  private next: string[] = [];

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
    const asked = this.pending.get(id);
    if (asked) return asked.promise;
    let resolve!: Pending['resolve'];
    let reject!: Pending['reject'];
    const promise = new Promise<string>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.pending.set(id, { promise, resolve, reject });
    // After the turn's promise jobs: every field of the page or the event has asked by then.
    if (this.next.push(id) === 1) setImmediate(() => void this.read());
    return promise;
  }

  private async read() {
    const ids = this.next;
    this.next = [];
    let found: Map<string, string> | null = null;
    let failure: unknown = null;
    try {
      const rows = await this.deps.sql.query<{ id: string; key: string | null }>(`SELECT "id", "key" FROM "Image" WHERE "id" = ANY($1::uuid[])`, [ids]);
      found = new Map();
      for (const { id, key } of rows) if (key !== null) found.set(id, key);
    } catch (error) {
      failure = error;
    }
    for (const id of ids) {
      const asked = this.pending.get(id)!;
      this.pending.delete(id);
      const key = found?.get(id);
      if (key !== undefined) {
        this.put(id, key);
        asked.resolve(key);
      } else {
        // A transition's images are stored before it can be made: a missing key is a broken row.
        asked.reject(failure ?? new Error(`Image ${id} has no stored file.`));
      }
    }
  }

  private put(id: string, key: string) {
    this.keys.delete(id);
    this.keys.set(id, key);
    if (this.keys.size > this.capacity) this.keys.delete(this.keys.keys().next().value!);
  }
}
