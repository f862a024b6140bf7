import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeFinishedBatches } from '../src/domain/batches.ts';
import { recordResult } from '../src/domain/ledger.ts';
import type { Db } from '../src/db.ts';
import { createAndGenerate } from '../src/domain/generation.ts';
import type { BatchProgress, Message } from '../src/events/messages.ts';
import { EventPublisher } from '../src/events/publisher.ts';
import type { Transition } from '../src/generated/prisma/client.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { createTestAccount, testConfig } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { holdTransaction } from './helpers/held-transaction.ts';
import { dropQueueKeys } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

/**
 * Batch progress closes a batch (completedAt) in the flush that sees its last item end, and only
 * then: later changes (its posters) publish progress without closing it again. Whatever the
 * flush did, the message carries the completedAt the database holds.
 */
const prefix = `bpc${process.pid}`;
let segue: Segue;
beforeAll(() => {
  segue = createSegue(testConfig({ QUEUE_PREFIX: prefix }));
});
afterAll(async () => {
  await segue?.close();
  await dropQueueKeys(segue.config.redis, prefix);
});

const noQueue = () => ({ ...segue, generationJobs: { enqueue: async () => undefined, removeWaiting: async () => undefined } as never });

/** A batch of `n` queued transitions, and the batch progress messages published for it from now on. */
async function batchOf(n: number) {
  const account = await createTestAccount(segue);
  const { batch, transitions } = await createAndGenerate(noQueue(), account.id, { transitions: transitionInputs(n) });
  // The app's own publisher has this batch pending: its flush goes out now, before the test listens.
  await segue.events.flush();
  const messages: BatchProgress[] = [];
  const id = await segue.pubsub.subscribe(segue.topics.batch(account.id, batch!.id), (m: Message) => {
    if (m.kind === 'batch') messages.push(m);
  });
  return { batch: batch!, transitions, messages, stop: () => segue.pubsub.unsubscribe(id) };
}

/** The database, counting the raw statements (the counts) and the transactions (the closes) run through it. */
function counting(onFindMany?: () => Promise<unknown>) {
  const counted = { raw: 0, closes: 0 };
  let first = true;
  const db = new Proxy(segue.db, {
    get(target, key) {
      if (key === '$queryRaw') return (...args: Parameters<Db['$queryRaw']>) => ((counted.raw += 1), target.$queryRaw(...args));
      if (key === '$transaction') return (...args: [never]) => ((counted.closes += 1), target.$transaction(...args));
      if (key === 'batch' && onFindMany) {
        return {
          findMany: async (args: Parameters<Db['batch']['findMany']>[0]) => {
            const rows = await target.batch.findMany(args);
            if (first) {
              first = false;
              await onFindMany();
            }
            return rows;
          },
        };
      }
      return Reflect.get(target, key);
    },
  });
  return { db, counted };
}

const publisherOn = (db: Db) => new EventPublisher({ db, pubsub: segue.pubsub, topics: segue.topics, logger: segue.logger }, 10);

async function complete(transitions: readonly Transition[]) {
  return segue.sql.query<Transition>(
    `UPDATE "Transition" SET "status" = 'COMPLETED', "version" = "version" + 1, "completedAt" = now() AT TIME ZONE 'UTC' WHERE "id" = ANY($1::uuid[]) RETURNING *`,
    [transitions.map((t) => t.id)],
  );
}

describe('batch progress and the closing of a batch', () => {
  it('closes the batch in the flush that sees it end, once; every message carries the completedAt stored', async () => {
    const { batch, transitions, messages, stop } = await batchOf(3);
    const { db, counted } = counting();
    const publisher = publisherOn(db);
    try {
      await publisher.transitionsChanged(transitions);
      await publisher.flush();
      await until(() => messages.length >= 1, { what: 'progress while it runs' });
      expect(messages[0]).toMatchObject({ status: 'QUEUED', completedAt: null });
      expect(counted).toEqual({ raw: 1, closes: 0 }); // the count; nothing to close

      await publisher.transitionsChanged(await complete(transitions));
      await publisher.flush();
      await until(() => messages.length >= 2, { what: 'progress at the end' });
      const stored = await segue.db.batch.findUniqueOrThrow({ where: { id: batch.id } });
      expect(stored.completedAt).toBeInstanceOf(Date);
      expect(messages[1]).toMatchObject({ status: 'COMPLETED' });
      expect(new Date(messages[1]!.completedAt!)).toEqual(stored.completedAt);
      expect(counted).toEqual({ raw: 2, closes: 1 }); // the count, and the close

      // A later change (a poster): progress again, no second close.
      await publisher.transitionsChanged(transitions.slice(0, 1));
      await publisher.flush();
      await until(() => messages.length >= 3, { what: 'progress after the end' });
      expect(new Date(messages[2]!.completedAt!)).toEqual(stored.completedAt);
      expect(counted).toEqual({ raw: 3, closes: 1 }); // the count only
      expect((await segue.db.batch.findUniqueOrThrow({ where: { id: batch.id } })).completedAt).toEqual(stored.completedAt);
    } finally {
      await publisher.close();
      stop();
    }
  });

  it('says the completedAt stored when another process closed the batch between its read and its close', async () => {
    const { batch, transitions, messages, stop } = await batchOf(2);
    const elsewhere = new Date('2026-01-02T03:04:05.678Z');
    const { db } = counting(() =>
      segue.sql.query(`UPDATE "Batch" SET "completedAt" = $2 WHERE "id" = $1::uuid`, [batch.id, elsewhere]),
    );
    const publisher = publisherOn(db);
    try {
      await publisher.transitionsChanged(await complete(transitions));
      await publisher.flush();
      await until(() => messages.length >= 1, { what: 'progress at the end' });
      expect(new Date(messages[0]!.completedAt!)).toEqual(elsewhere);
      expect((await segue.db.batch.findUniqueOrThrow({ where: { id: batch.id } })).completedAt).toEqual(elsewhere);
    } finally {
      await publisher.close();
      stop();
    }
  });

  it('sends the progress of a flush that failed (the database away) again a moment later, with its completedAt', async () => {
    const { batch, transitions, messages, stop } = await batchOf(2);
    const { db } = counting(async () => {
      throw new Error('the database is away');
    });
    const publisher = publisherOn(db);
    try {
      await publisher.transitionsChanged(await complete(transitions));
      await publisher.flush();
      expect(messages).toHaveLength(0);
      await until(() => messages.length >= 1, { what: 'the progress sent again' });
      const stored = await segue.db.batch.findUniqueOrThrow({ where: { id: batch.id } });
      expect(messages[0]).toMatchObject({ status: 'COMPLETED' });
      expect(new Date(messages[0]!.completedAt!)).toEqual(stored.completedAt);
    } finally {
      await publisher.close();
      stop();
    }
  });

  it('leaves open a batch that a retry reopens while it is being closed (the close waits for the retry, then reads its item)', async () => {
    const { batch, transitions, stop } = await batchOf(2);
    stop();
    await segue.sql.query(`UPDATE "Transition" SET "status" = 'FAILED', "version" = "version" + 1 WHERE "id" = ANY($1::uuid[])`, [transitions.map((t) => t.id)]);
    await segue.sql.query(`UPDATE "BatchItem" SET "status" = 'FAILED' WHERE "batchId" = $1::uuid`, [batch.id]);
    // A retry as retryTransition makes it, in a transaction of its own held open: the item
    // queued again, then the batch reopened.
    const retry = await holdTransaction(segue.config.databaseUrl);
    let closing: ReturnType<typeof closeFinishedBatches> | undefined;
    try {
      await retry.query(`UPDATE "Transition" SET "status" = 'QUEUED', "run" = "run" + 1, "version" = "version" + 1 WHERE "id" = $1::uuid`, [transitions[0]!.id]);
      await retry.query(`UPDATE "BatchItem" SET "status" = 'QUEUED' WHERE "batchId" = $1::uuid AND "transitionId" = $2::uuid`, [batch.id, transitions[0]!.id]);
      await retry.query(`UPDATE "Batch" SET "completedAt" = NULL WHERE "id" = $1::uuid`, [batch.id]);
      // Every item ended, as far as anyone else sees: the close goes ahead, and waits on the batch row.
      closing = closeFinishedBatches(segue.db, [batch.id]);
      await retry.blocks(closing, 'the close to wait for the retry');
      await retry.commit();
      expect(await closing).toEqual([]);
    } finally {
      await retry.end();
      await closing?.catch(() => undefined);
    }
    expect((await segue.db.batch.findUniqueOrThrow({ where: { id: batch.id } })).completedAt).toBeNull();
  });

  it('reopens a batch that a video fal delivers late lands in while the batch is being closed (the late result waits for the close, then undoes it)', async () => {
    const { batch, transitions, stop } = await batchOf(1);
    stop();
    const requestId = `late-${transitions[0]!.id}`;
    await segue.sql.query(
      `UPDATE "Transition" SET "status" = 'FAILED', "errorCode" = 'FAL_TIMEOUT', "falRequestId" = $2, "version" = "version" + 1 WHERE "id" = $1::uuid`,
      [transitions[0]!.id, requestId],
    );
    // A close as closeFinishedBatches makes it, held open: the batch row locked, then closed.
    const close = await holdTransaction(segue.config.databaseUrl);
    let late: ReturnType<typeof recordResult> | undefined;
    try {
      await close.query(`SELECT "id" FROM "Batch" WHERE "id" = $1::uuid FOR NO KEY UPDATE`, [batch.id]);
      await close.query(`UPDATE "Batch" SET "completedAt" = (now() AT TIME ZONE 'UTC') WHERE "id" = $1::uuid`, [batch.id]);
      // fal delivers the video now: the batch looks open to it, and it must still wait for the close.
      late = recordResult(segue, requestId, 'https://v3.fal.media/files/late/output.mp4');
      await close.blocks(late, 'the late result to wait for the close');
      await close.commit();
      expect(await late).toMatchObject({ late: true, row: { status: 'IN_PROGRESS', falVideoUrl: 'https://v3.fal.media/files/late/output.mp4' } });
    } finally {
      await close.end();
      await late?.catch(() => undefined);
    }
    expect((await segue.db.batch.findUniqueOrThrow({ where: { id: batch.id } })).completedAt).toBeNull();
  });
});
