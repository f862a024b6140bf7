import { createHash } from 'node:crypto';
import v8 from 'node:v8';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from './generated/prisma/client.ts';

export type Db = PrismaClient;

/**
 * Plain SQL on the same pool as Prisma (or on a lane of its own, see Database.lane), for the few
 * statements on the hot path of every generation (the state machine's single-row changes): named
 * prepared statements, parsed and planned once per connection, and no ORM layer in between.
 * Elsewhere, use Prisma.
 */
export interface Sql {
  /**
   * One statement. `onSend` is called once a connection is at hand, just before the statement is
   * written to it: what the statement reads is of a moment after that call (see SharedReads).
   */
  query<T>(text: string, values: readonly unknown[], options?: QueryOptions): Promise<T[]>;
  /**
   * Runs `work` in one transaction on one connection: committed when it resolves, rolled back
   * when it throws. For the few steps that must see each other's locks (the submit claim).
   * `opening`: fixed SQL (no parameters) sent with BEGIN in the same round trip, such as taking
   * an advisory lock.
   */
  transaction<T>(work: (tx: Pick<Sql, 'query'>) => Promise<T>, options?: { opening?: string }): Promise<T>;
  /**
   * Opens up to `connections` connections now (within the pool's size) and keeps them open when
   * idle: a worker's first burst of jobs then waits for no connection setup (one PostgreSQL
   * process each), and an idle spell does not close them again.
   */
  warm(connections: number): Promise<void>;
}

export interface QueryOptions {
  onSend?: () => void;
}

// Prisma stores DateTime as UTC in "timestamp without time zone"; pg would read it as local time.
const TIMESTAMP = 1114;
const parsers: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === TIMESTAMP ? (value: string) => new Date(`${value.replace(' ', 'T')}Z`) : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

export interface Database {
  prisma: Db;
  sql: Sql;
  /**
   * Plain SQL on a connection of its own (one per name, opened on first use, closed with the
   * rest), for a serial caller on the path that hands a freed fal slot to the next request: the
   * worker's claims. On the shared pool, a claim waited its turn behind every statement queued
   * there: with 100 requests finishing at once, 34-154 of them and 180-280 ms per claim.
   */
  lane(name: string): Sql;
  /** The pool now, for /metrics: a leaked connection or a pool too small shows as busy and waiting. */
  poolStats(): PoolStats;
  close(): Promise<void>;
}

export interface PoolStats {
  /** DATABASE_POOL_SIZE. */
  max: number;
  /** Connections running a statement or a transaction. */
  busy: number;
  /** Connections open and free. */
  idle: number;
  /** Statements and transactions waiting for a connection. */
  waiting: number;
}

export interface DatabaseOptions {
  max?: number;
  /** Waiting for a connection (new, or free in the pool). */
  connectTimeoutMs?: number;
  /** PostgreSQL's statement_timeout; the client gives up 5 s after it (a server that went silent). */
  statementTimeoutMs?: number;
}

// Prisma's query compiler is a WebAssembly module (1.7 MB in the small build prisma/schema.prisma
// asks for; 3.4 MB in the default one), compiled when its engine starts. V8
// tiers its hot functions up with TurboFan on background threads, whose compile memory stays
// with glibc's arenas: 50-65 MB of RSS for each process that holds a client. Baseline
// (Liftoff) code is all the compiler needs, since plans are compiled once per query shape and
// cached (measured with the default build: the same time per query; an idle `node dist/main.js
// worker` 232 -> 165 MB, 203 -> 154 MB with MALLOC_ARENA_MAX=2 as in the image). This turns tier-up off for all
// WebAssembly in the process (undici's HTTP parser too: no measurable cost); unlike
// --liftoff-only, a function Liftoff cannot compile still gets TurboFan rather than aborting the
// process. Set before any client exists.
v8.setFlagsFromString('--no-wasm-tier-up');
v8.setFlagsFromString('--no-wasm-dynamic-tiering');

/**
 * One pool per process, shared by the Prisma client (driver adapter; Prisma 7 needs no engine) and
 * `sql`, and a connection of its own for each lane asked for (a generation worker's claims). Every
 * wait on PostgreSQL is bounded: getting a connection, a statement, and a transaction left idle
 * by a stalled client.
 */
export function createDatabase(databaseUrl: string, options: DatabaseOptions = {}): Database {
  const statementTimeoutMs = options.statementTimeoutMs ?? 30_000;
  const poolOptions: pg.PoolConfig = {
    connectionString: databaseUrl,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 15_000,
    statement_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + 5_000,
    idle_in_transaction_session_timeout: Math.max(60_000, statementTimeoutMs * 2),
    application_name: 'segue',
  };
  // A lane's connection says whose it is in pg_stat_activity ("segue:claims").
  const newPool = (max: number, lane?: string) => {
    const pool = new pg.Pool({ ...poolOptions, max, ...(lane && { application_name: `segue:${lane}` }) });
    // An idle client's connection can drop (server restart); the pool replaces it on next use.
    pool.on('error', () => undefined);
    // Every connection is listened to for errors from the moment it opens, for as long as it
    // lives. pg-pool hands a new connection over while it is still parsing the bytes that said it
    // is ready, and a termination in those same bytes (a connection killed as it opened: a
    // restart, a failover) would be emitted before anyone who awaited it (this module, Prisma's
    // adapter) could listen: an uncaught exception, the end of the process. A connection that
    // failed so is not queryable: the statement that meets it fails, and it is not reused.
    pool.on('connect', (client) => client.on('error', ignoreError));
    return pool;
  };
  const pool = newPool(poolOptions.max!);
  const prisma = new PrismaClient({
    adapter: new PrismaPg(pool),
    // A burst of requests waits its turn for a connection rather than failing after Prisma's 2 s.
    transactionOptions: { maxWait: 15_000, timeout: 30_000 },
  });
  // Statement names, shared by every pool: a name stands for the same text on every connection.
  const names = new Map<string, string>();
  const lanes = new Map<string, { pool: pg.Pool; sql: Sql }>();
  let closed = false;
  return {
    prisma,
    sql: sqlOn(pool, names),
    lane(name) {
      let lane = lanes.get(name);
      if (!lane) {
        // A pool made after close() would never be ended.
        if (closed) throw new Error(`The database is closed: no lane "${name}" can be opened.`);
        const own = newPool(1, name);
        lanes.set(name, (lane = { pool: own, sql: sqlOn(own, names) }));
      }
      return lane.sql;
    },
    poolStats: () => ({ max: pool.options.max, busy: pool.totalCount - pool.idleCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    async close() {
      closed = true;
      await prisma.$disconnect();
      await Promise.all([pool, ...[...lanes.values()].map((lane) => lane.pool)].map((p) => p.end()));
    },
  };
}

const ignoreError = () => undefined;

/** Plain SQL on `pool`: named prepared statements (`names` holds their names by text). */
function sqlOn(pool: pg.Pool, names: Map<string, string>): Sql {
  const prepared = (text: string, values: readonly unknown[]) => {
    let name = names.get(text);
    if (!name) names.set(text, (name = `s${createHash('sha1').update(text).digest('hex').slice(0, 16)}`));
    return { name, text, values: values as unknown[], types: parsers };
  };
  return {
    async query<T>(text: string, values: readonly unknown[], options?: QueryOptions) {
      if (!options?.onSend) return (await pool.query(prepared(text, values))).rows as T[];
      // As pool.query does it, with the moment between the wait for a connection and the send.
      const client = await pool.connect();
      try {
        options.onSend();
      } catch (error) {
        client.release();
        throw error;
      }
      let failed: Error | undefined;
      try {
        return (await client.query(prepared(text, values))).rows as T[];
      } catch (error) {
        failed = error instanceof Error ? error : new Error(String(error));
        throw error;
      } finally {
        // As pool.query: a connection whose statement failed is not reused.
        client.release(failed);
      }
    },
    async warm(connections) {
      const count = Math.min(connections, pool.options.max);
      pool.options.min = Math.max(pool.options.min ?? 0, count);
      const opened = await Promise.allSettled(Array.from({ length: count }, () => pool.connect()));
      for (const result of opened) if (result.status === 'fulfilled') result.value.release();
      const failed = opened.find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
    },
    async transaction<T>(work: (tx: Pick<Sql, 'query'>) => Promise<T>, options: { opening?: string } = {}): Promise<T> {
      // A connection that dies while checked out (between two statements) says so to the
      // listener every connection has (see newPool); the statement that meets it fails, and the
      // connection is not reused.
      const client = await pool.connect();
      let broken: unknown = null;
      try {
        // Several statements in one simple query: one round trip.
        await client.query(options.opening ? `BEGIN; ${options.opening}` : 'BEGIN');
        const result = await work({
          async query<R>(text: string, values: readonly unknown[]) {
            return (await client.query(prepared(text, values))).rows as R[];
          },
        });
        await client.query('COMMIT');
        return result;
      } catch (error) {
        broken = await client.query('ROLLBACK').then(
          () => null,
          (rollbackError: unknown) => rollbackError,
        );
        throw error;
      } finally {
        // A connection whose rollback failed is in an unknown state: the pool must not reuse it.
        client.release(broken instanceof Error ? broken : undefined);
      }
    },
  };
}
