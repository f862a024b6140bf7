import { randomBytes } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTransition } from '../src/domain/state-machine.ts';
import { createTransitions } from '../src/domain/transitions.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { createTestAccount, testConfig } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { dropQueueKeys } from './helpers/pipeline.ts';
import { statementsDuring } from './helpers/statements.ts';

/**
 * The state machine's row reads against the real PostgreSQL: the reads asked for in one turn go
 * out as one statement (a worker starting a round of jobs), and each is still of a moment after
 * it was asked for.
 */
let segue: Segue;
const prefix = `reads${randomBytes(3).toString('hex')}`;
beforeAll(() => {
  segue = createSegue(testConfig({ QUEUE_PREFIX: prefix }));
});
afterAll(async () => {
  await segue.close();
  await dropQueueKeys(segue.config.redis, prefix);
});

const reads = (sent: string[]) => sent.filter((s) => s.startsWith('SELECT * FROM "Transition" WHERE "id"'));

async function drafts(n: number) {
  const account = await createTestAccount(segue);
  const { transitions } = await createTransitions(segue, account.id, { transitions: transitionInputs(n) });
  return transitions;
}

describe('transition reads', () => {
  it('reads asked for in one turn go out as one statement, each answered with its own row', async () => {
    const rows = await drafts(5);
    const unknown = uuidv7();
    const ids = [rows[3]!.id, unknown, rows[0]!.id, rows[4]!.id, rows[1]!.id, rows[3]!.id];
    let loaded: Array<{ id: string; prompt: string } | null> = [];
    const sent = await statementsDuring(async () => {
      loaded = await Promise.all(ids.map((id) => loadTransition(segue, id)));
    });
    expect(reads(sent)).toHaveLength(1);
    expect(loaded.map((row) => row?.id ?? null)).toEqual([rows[3]!.id, null, rows[0]!.id, rows[4]!.id, rows[1]!.id, rows[3]!.id]);
    expect(loaded[2]!.prompt).toBe(rows[0]!.prompt);
  });

  it('keeps nothing: a read asked for after a write sees it', async () => {
    const [row] = await drafts(1);
    const before = await loadTransition(segue, row!.id);
    await segue.sql.query(`UPDATE "Transition" SET "prompt" = 'rewritten', "version" = "version" + 1 WHERE "id" = $1::uuid`, [row!.id]);
    const [after, again] = await Promise.all([loadTransition(segue, row!.id), loadTransition(segue, row!.id)]);
    expect(before!.prompt).toBe(row!.prompt);
    expect(after).toMatchObject({ prompt: 'rewritten', version: before!.version + 1 });
    expect(again).toMatchObject({ prompt: 'rewritten', version: before!.version + 1 });
  });

  it('an id in another form is read alone, as PostgreSQL reads it; a malformed one fails alone', async () => {
    const [a, b] = await drafts(2);
    const [upper, plain, malformed] = await Promise.allSettled([
      loadTransition(segue, a!.id.toUpperCase()),
      loadTransition(segue, b!.id),
      loadTransition(segue, 'not-a-uuid'),
    ]);
    expect(upper).toMatchObject({ status: 'fulfilled', value: { id: a!.id } });
    expect(plain).toMatchObject({ status: 'fulfilled', value: { id: b!.id } });
    expect(malformed).toMatchObject({ status: 'rejected', reason: { code: '22P02' } });
  });
});
