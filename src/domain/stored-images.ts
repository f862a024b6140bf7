import type { Sql } from '../db.ts';
import type { Prisma } from '../generated/prisma/client.ts';

/**
 * What never changes of an uploaded image once it is stored: what a transition's frames
 * (frontImageUrl, tailImageUrl) and image nodes (the Image type selects exactly these) show. The
 * rest of the row (fal's copy, leases) does change, and is neither kept here nor shown.
 */
export const STORED_IMAGE_COLUMNS = {
  id: true,
  accountId: true,
  status: true,
  key: true,
  contentType: true,
  width: true,
  height: true,
  bytes: true,
  createdAt: true,
} as const satisfies Prisma.ImageSelect;

export type StoredImage = Prisma.ImageGetPayload<{ select: typeof STORED_IMAGE_COLUMNS }> & { key: string };

const COLUMNS = Object.keys(STORED_IMAGE_COLUMNS).map((column) => `"${column}"`).join(', ');

type Pending = { promise: Promise<StoredImage>; resolve: (image: StoredImage) => void; reject: (error: unknown) => void };

/**
 * The stored images of transitions, as they are shown. None changes once stored, so this process
 * keeps the most recently used `capacity` of them, and the ids asked for in one turn of the event
 * loop are read in one statement: a page of transitions, or one event shown to every subscriber
 * of its batch. An id asked for again while its read is under way waits for that read. A live
 * event is shown from the row it carries; without this, each of its uploaded frames was a read
 * per event per subscriber.
 */
export class StoredImages {
  private readonly images = new Map<string, StoredImage>();
  /** Ids asked for and not yet answered: those of the next read, and those of the reads under way. */
  private readonly pending = new Map<string, Pending>();
  private next: string[] = [];

  constructor(
    private readonly deps: { sql: Pick<Sql, 'query'> },
    private readonly capacity = 10_000,
  ) {}

  of(id: string): Promise<StoredImage> {
    const known = this.images.get(id);
    if (known !== undefined) {
      // Re-inserted: the Map's order is the recency order.
      this.images.delete(id);
      this.images.set(id, known);
      return Promise.resolve(known);
    }
    const asked = this.pending.get(id);
    if (asked) return asked.promise;
    let resolve!: Pending['resolve'];
    let reject!: Pending['reject'];
    const promise = new Promise<StoredImage>((res, rej) => {
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
    let found: Map<string, StoredImage> | null = null;
    let failure: unknown = null;
    try {
      // Uploads only: a URL image is checked again in place (its file and facts replaced), and
      // no transition points at one.
      const rows = await this.deps.sql.query<Omit<StoredImage, 'key'> & { key: string | null }>(
        `SELECT ${COLUMNS} FROM "Image" WHERE "id" = ANY($1::uuid[]) AND "sourceUrl" IS NULL`,
        [ids],
      );
      found = new Map();
      // Only what is stored is kept: an image not stored yet may be, later.
      for (const row of rows) if (row.key !== null && row.status === 'READY') found.set(row.id, row as StoredImage);
    } catch (error) {
      failure = error;
    }
    for (const id of ids) {
      const asked = this.pending.get(id)!;
      this.pending.delete(id);
      const image = found?.get(id);
      if (image !== undefined) {
        this.put(image);
        asked.resolve(image);
      } else {
        // A transition's images are stored uploads before it can be made: anything else is a broken row.
        asked.reject(failure ?? new Error(`Image ${id} is not a stored upload.`));
      }
    }
  }

  private put(image: StoredImage) {
    this.images.delete(image.id);
    this.images.set(image.id, image);
    if (this.images.size > this.capacity) this.images.delete(this.images.keys().next().value!);
  }
}
