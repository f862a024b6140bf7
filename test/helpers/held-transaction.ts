import pg from 'pg';
import { until } from './wait.ts';

/**
 * A transaction of another process, held open on a connection of its own: the test writes in it,
 * starts the operation under test, waits until PostgreSQL shows that operation blocked by this
 * transaction, then commits.
 */
export interface HeldTransaction {
  query(text: string, values?: unknown[]): Promise<unknown>;
  /** Resolves once a session waits on this transaction's locks; rejects when `op` settles first (it did not wait). */
  blocks(op: Promise<unknown>, what: string): Promise<void>;
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
  const blocked = async () =>
    (await probe.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid))`, [pid])).rows[0]!.n !== '0';
  return {
    query: (text, values) => client.query(text, values),
    async blocks(op, what) {
      await Promise.race([until(blocked, { what }), op.then(() => Promise.reject(new Error(`${what}: it did not wait`)))]);
    },
    commit: async () => void (await client.query('COMMIT')),
    async end() {
      await client.query('ROLLBACK').catch(() => undefined);
      await Promise.all([client.end(), probe.end()]);
    },
  };
}
