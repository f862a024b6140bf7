import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { READ_POINT_COLUMNS, readBefore, readPointOf, type ReadPoint } from '../src/domain/read-points.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { testConfig } from './helpers/app.ts';
import { holdTransaction } from './helpers/held-transaction.ts';

/**
 * Read points put reads of PostgreSQL in the order they were taken (batch progress from several
 * processes rests on it): checked against the server, with a transaction held open across reads.
 */
let segue: Segue;
beforeAll(() => {
  segue = createSegue(testConfig());
});
afterAll(async () => {
  await segue?.close();
});

const readPoint = async () => {
  const [row] = await segue.sql.query<{ readSince: number; readXmax: number; readRunning: number }>(`SELECT ${READ_POINT_COLUMNS}`, []);
  return readPointOf(row!);
};
/** A transaction that takes an xid and commits. */
const commitOne = () => segue.sql.query('SELECT pg_current_xact_id()', []);

describe('read points', () => {
  it('order reads as they were taken, across a transaction that was running at the first and committed before the second', async () => {
    const held = await holdTransaction(segue.config.databaseUrl);
    try {
      await held.query('SELECT pg_current_xact_id()'); // the held one has an xid, lower than the next
      await commitOne(); // a later xid commits while the held one runs: xmax passes the held one
      const first = await readPoint();
      expect(first.running).toBeGreaterThanOrEqual(1);
      await held.commit();
      const second = await readPoint();
      expect(readBefore(first, second)).toBe(true);
      expect(readBefore(second, first)).toBe(false);
      // With nothing else committing between the reads (the usual case here), the held commit
      // moved no xmax: only the running count tells them apart.
      if (second.xmax === first.xmax) expect(second.running).toBeLessThan(first.running);
      expect(second.since).toBe(first.since);
    } finally {
      await held.end();
    }
  });

  it('a read after a commit is never before one taken earlier', async () => {
    const points: ReadPoint[] = [];
    for (let i = 0; i < 20; i++) {
      points.push(await readPoint());
      await commitOne();
    }
    for (let i = 1; i < points.length; i++) {
      expect(readBefore(points[i - 1]!, points[i]!)).toBe(true);
      expect(readBefore(points[i]!, points[i - 1]!)).toBe(false);
    }
  });

  it('compares points of one server start only: after a restart or on another cluster, xids say nothing', () => {
    const a: ReadPoint = { since: 1_000, xmax: 500, running: 0 };
    expect(readBefore(a, { since: 1_000, xmax: 501, running: 3 })).toBe(true);
    expect(readBefore(a, { since: 1_000, xmax: 500, running: 0 })).toBe(false); // the same commits
    expect(readBefore({ since: 1_000, xmax: 500, running: 2 }, { since: 1_000, xmax: 500, running: 1 })).toBe(true);
    // Another start with lower xids (a failover, a restored cluster): not "before", so applied.
    expect(readBefore({ since: 2_000, xmax: 10, running: 0 }, a)).toBe(false);
    expect(readBefore(a, { since: 2_000, xmax: 10, running: 0 })).toBe(false);
  });
});
