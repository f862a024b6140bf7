import { createRequire } from 'node:module';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cancelBatch, createAndGenerate } from '../src/domain/generation.ts';
import type { Transition } from '../src/generated/prisma/client.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { codes, createTestAccount, startTestApp, type TestApp } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { TransitionUpdated } from './helpers/operations.ts';
import { dropQueueKeys } from './helpers/pipeline.ts';
import { subscribe, wsClient } from './helpers/subscribe.ts';
import { until } from './helpers/wait.ts';

/**
 * What a subscription reads from the database: each event is shown from the row it carries, with
 * no read, so every field of one message is of one version.
 */
const prefix = `sset${process.pid}`;
let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({ QUEUE_PREFIX: prefix });
});
afterAll(async () => {
  await app?.close();
  await dropQueueKeys(app.segue.config.redis, prefix);
});

/** The SQL statements this process sends while `work` runs (node-postgres carries Prisma's and Segue's own). */
async function statementsDuring(work: () => Promise<unknown>): Promise<string[]> {
  const pg = createRequire(import.meta.url)('pg') as { Client: { prototype: { query: (...args: unknown[]) => unknown } } };
  const query = pg.Client.prototype.query;
  const sent: string[] = [];
  pg.Client.prototype.query = function (this: unknown, ...args: unknown[]) {
    const first = args[0] as string | { text?: string };
    sent.push((typeof first === 'string' ? first : (first.text ?? '')).replace(/\s+/g, ' '));
    return query.apply(this, args);
  };
  try {
    await work();
  } finally {
    pg.Client.prototype.query = query;
  }
  return sent;
}

const noQueue = () => ({ ...app.segue, generationJobs: { enqueue: async () => undefined, removeWaiting: async () => undefined } as never });

async function batchOf(n: number) {
  const account = await createTestAccount(app.segue);
  const { batch, transitions } = await createAndGenerate(noQueue(), account.id, { transitions: transitionInputs(n) });
  return { account, batch: batch!, transitions };
}

/** Statements that read or write the rows a stream shows (the credential check is not one of them). */
const onRows = (sql: string) => /"(Batch|BatchItem|Transition)"/.test(sql);

describe('what a subscription reads', () => {
  it('an event is shown from the row it carries: its error is of its version, and nothing is read for it', async () => {
    const { account, transitions } = await batchOf(1);
    const id = transitions[0]!.id;
    const client = wsClient(app.url + '/graphql', account.apiKey);
    try {
      const stream = subscribe(client, TransitionUpdated, { id: encodeId('Transition', id) }, (d) => d.transitionUpdated);
      const first = await stream.first;
      // The row has moved on twice in the database; the subscriber is told of the first change only.
      const [later] = await app.segue.sql.query<Transition>(
        `UPDATE "Transition" SET "status" = 'FAILED', "errorCode" = 'LATER', "errorMessage" = 'the row now', "version" = "version" + 2
          WHERE "id" = $1::uuid RETURNING *`,
        [id],
      );
      const told: Transition = { ...later!, version: later!.version - 1, errorCode: 'FAL_ERROR', errorMessage: 'the event' };
      const sent = await statementsDuring(async () => {
        await app.segue.events.transitionsChanged([told]);
        await until(() => stream.events.length >= 2, { what: 'the event' });
      });
      expect(stream.events[1]).toMatchObject({ version: first.version + 1, status: 'FAILED', error: { code: 'FAL_ERROR', message: 'the event' } });
      // (The batch's progress, published 100 ms after a change, may read its counts meanwhile.)
      expect(sent.filter((sql) => sql.startsWith('SELECT "public"."Transition"'))).toEqual([]);
      stream.stop();
    } finally {
      await client.dispose();
    }
  });
});
