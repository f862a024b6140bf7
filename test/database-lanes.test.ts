import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createDatabase, type Database } from '../src/db.ts';
import { createAndGenerate } from '../src/domain/generation.ts';
import { testConfig } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

/**
 * A lane is a connection of its own beside the shared pool: what runs on it never waits behind the
 * statements queued for the pool. The worker's claims (the step that hands a freed fal slot to
 * the next request) run on one. Against the real PostgreSQL.
 */
const url = testConfig().databaseUrl;
let database: Database | undefined;
let p: Pipeline | undefined;
const admin = new pg.Client({ connectionString: url });
const adminReady = admin.connect();
afterEach(async () => {
  await database?.close();
  database = undefined;
  await p?.close();
  p = undefined;
});
afterAll(async () => {
  await admin.end();
});

const backends = async (applicationName: string) => {
  await adminReady;
  const { rows } = await admin.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1',
    [applicationName],
  );
  return rows.map((r) => r.pid);
};

describe('Database.lane', () => {
  it("runs statements and transactions while every connection of the shared pool is held, where the pool's own wait", async () => {
    database = createDatabase(url, { max: 1, connectTimeoutMs: 300 });
    // The lane's connection is opened first: what is shown below is that it never waits for the
    // held pool, not how fast a new connection comes on a loaded machine.
    const lane = database.lane('claims');
    await lane.warm(1);
    let free!: () => void;
    const held = new Promise<void>((resolve) => (free = resolve));
    let holds!: () => void;
    const holding = new Promise<void>((resolve) => (holds = resolve));
    const transaction = database.sql.transaction(async () => {
      holds();
      await held;
    });
    await holding;
    try {
      // The shared pool has no connection to give within its wait.
      await expect(database.sql.query('SELECT 1 AS one', [])).rejects.toThrow(/timeout/i);
      expect(await lane.query<{ one: number }>('SELECT 1 AS one', [])).toEqual([{ one: 1 }]);
      const inTransaction = await lane.transaction(async (tx) => tx.query<{ n: number }>('SELECT 2 AS n', []), {
        opening: 'SELECT pg_advisory_xact_lock(42)',
      });
      expect(inTransaction).toEqual([{ n: 2 }]);
    } finally {
      free();
      await transaction;
    }
  });

  it('is one connection per name, named segue:<name> in pg_stat_activity, and closes with the database (none opens after)', async () => {
    database = createDatabase(url, { max: 4 });
    const lane = database.lane('claims');
    expect(database.lane('claims')).toBe(lane);
    await lane.warm(1);
    // Five statements at once: one connection answers them all, one after another.
    const pids = await Promise.all(Array.from({ length: 5 }, () => lane.query<{ pid: number }>('SELECT pg_backend_pid() AS pid', [])));
    expect(new Set(pids.map(([row]) => row!.pid)).size).toBe(1);
    expect(await backends('segue:claims')).toContain(pids[0]![0]!.pid);
    const closing = database;
    database = undefined;
    await closing.close();
    // A lane asked for after close() would be a pool nobody ends.
    expect(() => closing.lane('other')).toThrow(/closed/);
    // pool.end() waits for the connection to be closed, but the server may list it a moment longer.
    await until(async () => !(await backends('segue:claims')).includes(pids[0]![0]!.pid), { what: 'the lane’s backend to go' });
  });
});

describe("a worker's claims", () => {
  it('run on its claims lane, not on the shared pool', { timeout: 60_000 }, async () => {
    p = await startPipeline({ emulator: { latencyMs: 100 } });
    const query = pg.Client.prototype.query;
    // Which connection (by its application_name) each claim's opening went on.
    const claimsOn: string[] = [];
    (pg.Client.prototype as { query: unknown }).query = function (this: { connectionParameters?: { application_name?: string } }, ...args: unknown[]) {
      const first = args[0] as string | { text?: string };
      const text = typeof first === 'string' ? first : (first?.text ?? '');
      if (text.includes('pg_advisory_xact_lock')) claimsOn.push(this.connectionParameters?.application_name ?? '?');
      return (query as (...a: unknown[]) => unknown).apply(this, args);
    };
    try {
      await p.startInlineWorker();
      const account = await p.account();
      const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(3) });
      const rows = await p.settled(batch!.id, 30_000);
      expect(rows.map((r) => r.status)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    } finally {
      pg.Client.prototype.query = query;
    }
    expect(claimsOn.length).toBeGreaterThan(0);
    expect(new Set(claimsOn)).toEqual(new Set(['segue:claims']));
  });
});
