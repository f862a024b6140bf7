import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { createDatabase } from '../src/db.ts';
import { SharedReads } from '../src/events/shared-reads.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { testConfig } from './helpers/app.ts';
import { statementsDuring } from './helpers/statements.ts';

/**
 * A read is shared by those who ask for it before it is sent, and only by them: a subscriber that
 * asks after it was sent (its feed listened too late for that snapshot) gets a read of its own.
 * Against the real pool and PostgreSQL; each read tells which statement answered it.
 */
let segue: Segue;
beforeAll(() => {
  segue = createSegue(testConfig());
});
afterAll(async () => {
  await segue?.close();
});

const MARK = 'shared-read-probe';
/** One statement, answered with a number of its own (its backend's and a random one). */
const probe = (sql: { query: Segue['sql']['query'] }) =>
  sql.query<{ answer: string }>(`SELECT '${MARK}' AS mark, pg_backend_pid()::text || ':' || random()::text AS answer`, []).then((rows) => rows[0]!.answer);
const probes = (sent: string[]) => sent.filter((s) => s.includes(MARK)).length;

/** A pool of one connection, held by a transaction until `free()` (resolved once it holds it); `end()` frees it and closes the pool. */
async function busyPool(options: { connectTimeoutMs?: number } = {}) {
  const database = createDatabase(segue.config.databaseUrl, { max: 1, ...options });
  let free!: () => void;
  let holds!: () => void;
  const busy = new Promise<void>((resolve) => (free = resolve));
  const held = new Promise<void>((resolve) => (holds = resolve));
  const holding = database.sql.transaction(async () => {
    holds();
    await busy;
  });
  // Its own connection came within the wait: only the reads below meet the timeout.
  await Promise.race([held, holding]);
  return {
    sql: database.sql,
    free: () => free(),
    async end() {
      free();
      await holding;
      await database.close();
    },
  };
}

describe('shared reads', () => {
  it('those who ask in the same turn share one statement', async () => {
    const reads = new SharedReads<string>(segue.sql);
    let answers: string[] = [];
    const sent = await statementsDuring(async () => {
      answers = await Promise.all([1, 2, 3, 4, 5].map(() => reads.read('batch-a', probe)));
    });
    expect(probes(sent)).toBe(1);
    expect(new Set(answers).size).toBe(1);
  });

  it('whoever asks once the read was sent gets a read of its own', async () => {
    let sentNow: (() => void) | undefined;
    // The pool as SharedReads sees it, telling the test when a statement goes out.
    const reads = new SharedReads<string>({
      query: (text, values, options) =>
        segue.sql.query(text, values, {
          onSend: () => {
            options?.onSend?.();
            sentNow?.();
          },
        }),
    });
    let first!: Promise<string>;
    let second!: Promise<string>;
    const sent = await statementsDuring(async () => {
      const wasSent = new Promise<void>((resolve) => (sentNow = resolve));
      first = reads.read('batch-b', probe);
      await wasSent;
      second = reads.read('batch-b', probe);
      await Promise.all([first, second]);
    });
    expect(probes(sent)).toBe(2);
    expect(await first).not.toBe(await second);
  });

  it('different keys (batches, accounts) are read apart; a failed read is not kept', async () => {
    const reads = new SharedReads<string>(segue.sql);
    const sent = await statementsDuring(async () => {
      const [a, b] = await Promise.all([reads.read('acc-1/batch', probe), reads.read('acc-2/batch', probe)]);
      expect(a).not.toBe(b);
    });
    expect(probes(sent)).toBe(2);
    const failing = reads.read('acc-3/batch', (sql) => sql.query('SELECT nonsense_column FROM nowhere', []).then(() => 'never'));
    const joined = reads.read('acc-3/batch', probe);
    await expect(failing).rejects.toThrow(/nowhere/);
    await expect(joined).rejects.toThrow(/nowhere/);
    // The next asker reads again.
    expect(await reads.read('acc-3/batch', probe)).toMatch(/:/);
  });

  it('those who ask while the read waits for a connection join it', async () => {
    const pool = await busyPool();
    let sends = 0;
    try {
      const reads = new SharedReads<string>({ query: (text, values, options) => pool.sql.query(text, values, { onSend: () => (sends++, options?.onSend?.()) }) });
      let answers: string[] = [];
      const sent = await statementsDuring(async () => {
        const first = reads.read('batch-c', probe);
        await Promise.resolve();
        expect(sends).toBe(0); // still waiting for the connection
        const second = reads.read('batch-c', probe);
        pool.free();
        answers = await Promise.all([first, second]);
      });
      expect(probes(sent)).toBe(1);
      expect(answers[0]).toBe(answers[1]);
    } finally {
      await pool.end();
    }
  });

  it('a read that fails before it is sent (no connection within the wait) fails its joiners, and the next asker reads again', async () => {
    const pool = await busyPool({ connectTimeoutMs: 1_000 });
    try {
      const reads = new SharedReads<string>(pool.sql);
      const first = reads.read('batch-d', probe);
      const joined = reads.read('batch-d', probe);
      await expect(first).rejects.toThrow(/timeout exceeded when trying to connect/);
      await expect(joined).rejects.toThrow(/timeout exceeded when trying to connect/);
      pool.free();
      expect(await reads.read('batch-d', probe)).toMatch(/:/);
    } finally {
      await pool.end();
    }
  });

  it('an onSend that throws gives the connection back: the next statement gets it', async () => {
    const database = createDatabase(segue.config.databaseUrl, { max: 1, connectTimeoutMs: 1_000 });
    try {
      await expect(
        database.sql.query('SELECT 1', [], {
          onSend: () => {
            throw new Error('the caller failed');
          },
        }),
      ).rejects.toThrow('the caller failed');
      expect(await database.sql.query<{ one: number }>('SELECT 1 AS one', [])).toEqual([{ one: 1 }]);
    } finally {
      await database.close();
    }
  });

  it('onSend comes before the statement is written to the connection', async () => {
    const pg = createRequire(import.meta.url)('pg') as { Client: { prototype: { query: (...args: unknown[]) => unknown } } };
    const query = pg.Client.prototype.query;
    const order: string[] = [];
    pg.Client.prototype.query = function (this: unknown, ...args: unknown[]) {
      const first = args[0] as string | { text?: string };
      if ((typeof first === 'string' ? first : (first.text ?? '')).includes(MARK)) order.push('written');
      return query.apply(this, args);
    };
    try {
      await probe({ query: (text, values) => segue.sql.query(text, values, { onSend: () => order.push('onSend') }) });
    } finally {
      pg.Client.prototype.query = query;
    }
    expect(order).toEqual(['onSend', 'written']);
  });

  it('over a pool that does not say when it sends, reads stop being shared', async () => {
    const reads = new SharedReads<string>({ query: (text, values) => segue.sql.query(text, values) });
    await reads.read('batch-e', probe);
    let answers: string[] = [];
    const sent = await statementsDuring(async () => {
      answers = await Promise.all([reads.read('batch-e', probe), reads.read('batch-e', probe)]);
    });
    expect(probes(sent)).toBe(2);
    expect(answers[0]).not.toBe(answers[1]);
  });
});
