import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

  it('whoever asks once the read was sent gets a read of its own, of a later moment', async () => {
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
});
