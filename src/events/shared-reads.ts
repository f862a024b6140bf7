import type { Sql } from '../db.ts';

/**
 * Reads that the subscribers of one thing share: one statement for all who ask for it before it
 * is sent to PostgreSQL. A subscriber may only take a read whose snapshot is of a moment after its
 * own feed listened (or it could miss a change in between), and each asks only once its feed
 * listens: so a read can be joined until it is sent, and not after. Whoever asks later gets a read
 * of its own, which those asking with it share in turn.
 *
 * What it saves: when a batch ends, each of its streams reads the batch again, all in the turn
 * that brought them the end (one statement, not one per viewer); after an API restart a batch's
 * viewers set up again together and wait together for a connection.
 *
 * The value read is shared as it is: whoever takes it must not change it.
 */
export class SharedReads<T> {
  private readonly joinable = new Map<string, Promise<T>>();
  /** Off for good once a read went to the pool and settled without onSend (a pool, or a wrapper, that drops it). */
  private sharing = true;

  constructor(private readonly sql: Pick<Sql, 'query'>) {}

  /** `read` runs its statement on the `sql` it is given; `key` names what it reads (and for whom). */
  read(key: string, read: (sql: Pick<Sql, 'query'>) => Promise<T>): Promise<T> {
    const open = this.sharing ? this.joinable.get(key) : undefined;
    if (open) return open;
    let result: Promise<T> | undefined;
    let queried = false;
    let sent = false;
    const forget = () => {
      if (result && this.joinable.get(key) === result) this.joinable.delete(key);
    };
    const onSend = () => {
      sent = true;
      forget();
    };
    result = read({
      query: (text, values) => {
        queried = true;
        return this.sql.query(text, values, { onSend });
      },
    });
    // Read with no word of its send: whoever joined it may have a snapshot from before its feed
    // listened. Nothing is shared from then on. (Failed before it was sent: the next asker reads.)
    result.then(() => {
      if (queried && !sent) {
        this.sharing = false;
        this.joinable.clear();
      }
      forget();
    }, forget);
    // Sent already (a pool that says so at once): nothing to join.
    if (this.sharing && !sent) this.joinable.set(key, result);
    return result;
  }
}
