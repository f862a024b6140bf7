import { expect } from 'vitest';
import pg from 'pg';
import { until } from './wait.ts';

/**
 * A transaction of another process, held open on a connection of its own: the test writes in it,
 * starts the operation under test, waits until PostgreSQL shows that operation blocked by this
 * transaction, then commits.
 */
export interface HeldTransaction {
  query(text: string, values?: unknown[]): Promise<unknown>;
  /**
   * Resolves once `sessions` sessions (default 1) wait on this transaction's locks, directly or
   * behind another waiting one (queued for the same row); rejects when `op` settles first (it did
   * not wait).
   */
  blocks(op: Promise<unknown>, what: string, sessions?: number): Promise<void>;
  /** Resolves once a statement matching `statement` waits on this transaction's locks; rejects when `op` settles first. */
  blocksOn(op: Promise<unknown>, what: string, statement: RegExp): Promise<void>;
  /** The statements waiting on this transaction's locks now, directly or behind another waiting one. */
  waiting(): Promise<string[]>;
  commit(): Promise<void>;
  /** Rolls back what is not committed, and closes the connection. */
  end(): Promise<void>;
}

export async function holdTransaction(databaseUrl: string): Promise<HeldTransaction> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query('BEGIN');
  const pid = Number((await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
  // Asked on a connection of its own: the held one is busy holding.
  const probe = new pg.Client({ connectionString: databaseUrl });
  await probe.connect();
  const waiting = async () => {
    const { rows } = await probe.query<{ query: string }>(
      `WITH RECURSIVE waiting(pid) AS (
         SELECT pid FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid))
         UNION SELECT a.pid FROM pg_stat_activity a JOIN waiting w ON w.pid = ANY(pg_blocking_pids(a.pid)))
       SELECT a.query FROM waiting w JOIN pg_stat_activity a ON a.pid = w.pid`,
      [pid],
    );
    return rows.map((r) => r.query);
  };
  const blocked = async (sessions: number) => (await waiting()).length >= sessions;
  return {
    query: (text, values) => client.query(text, values),
    async blocks(op, what, sessions = 1) {
      await Promise.race([until(() => blocked(sessions), { what }), op.then(() => Promise.reject(new Error(`${what}: it did not wait`)))]);
    },
    async blocksOn(op, what, statement) {
      const seen = async () => (await waiting()).some((query) => statement.test(query));
      await Promise.race([until(seen, { what }), op.then(() => Promise.reject(new Error(`${what}: it did not wait`)))]);
    },
    waiting,
    commit: async () => void (await client.query('COMMIT')),
    async end() {
      await client.query('ROLLBACK').catch(() => undefined);
      await Promise.all([client.end(), probe.end()]);
    },
  };
}

/** What waits for a transition's row when fal's webhook records its video, and when a run gives up on its request. */
const STATEMENTS = {
  webhook: /UPDATE "FalRequest" SET "state" = 'ENDED', "outcome" = 'OK'/,
  'give-up': /^UPDATE "Transition" SET "status"/,
};

/**
 * fal's webhook recording a video, and a run giving up on the same request, made to meet at the
 * transition's row: another session holds the row while `settle()` runs, until `first`'s statement
 * waits for it and then the other's waits too, behind it; then lets go. `between` runs once the
 * first waits (to send what comes second). What `settle()` gives is returned. Either way the
 * video must end up the run's: a give-up after the webhook, guarded by "no result yet", changes
 * nothing; a webhook after the give-up takes the video for the run that gave up.
 */
export async function meetAtRow<T>(
  databaseUrl: string,
  transitionId: string,
  first: keyof typeof STATEMENTS,
  settle: () => Promise<T>,
  between: () => void = () => undefined,
): Promise<T> {
  const second = first === 'webhook' ? 'give-up' : 'webhook';
  const hold = await holdTransaction(databaseUrl);
  try {
    await hold.query(`SELECT 1 FROM "Transition" WHERE "id" = $1::uuid FOR UPDATE`, [transitionId]);
    const settled = settle();
    await hold.blocksOn(settled, `the ${first} to wait for the row`, STATEMENTS[first]);
    expect(await hold.waiting()).toEqual([expect.stringMatching(STATEMENTS[first])]);
    between();
    await hold.blocksOn(settled, `the ${second} to wait behind it`, STATEMENTS[second]);
    await hold.commit();
    return await settled;
  } finally {
    await hold.end();
  }
}
