import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeFinishedBatches, markBatchEndsSent, unsentBatchEnds } from '../src/domain/batches.ts';
import { recordResult } from '../src/domain/ledger.ts';
import type { Db, Sql } from '../src/db.ts';
import { createAndGenerate } from '../src/domain/generation.ts';
import type { BatchProgress, Message } from '../src/events/messages.ts';
import { EventPublisher } from '../src/events/publisher.ts';
import { batchProgress, transitionUpdates } from '../src/events/streams.ts';
import type { Transition } from '../src/generated/prisma/client.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { createTestAccount, testConfig, withoutJobs } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { holdTransaction } from './helpers/held-transaction.ts';
import { dropQueueKeys } from './helpers/pipeline.ts';
import { Reconciler } from '../src/queue/reconciler.ts';
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

const noQueue = () => withoutJobs(segue);

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

/**
 * The database as a publisher sees it, counting its reads (batches with their counts, through
 * sql) and its transactions (the closes); `afterFirstRead` runs once, after the first read returned.
 */
function counting(afterFirstRead?: () => Promise<unknown>) {
  const counted = { reads: 0, closes: 0 };
  let first = true;
  const db = new Proxy(segue.db, {
    get(target, key) {
      if (key === '$transaction') return (...args: [never]) => ((counted.closes += 1), target.$transaction(...args));
      return Reflect.get(target, key);
    },
  });
  const sql: Pick<Sql, 'query'> = {
    query: async <T>(text: string, values: readonly unknown[]) => {
      counted.reads += 1;
      const rows = await segue.sql.query<T>(text, values);
      if (first && afterFirstRead) {
        first = false;
        await afterFirstRead();
      }
      return rows;
    },
  };
  return { db, sql, counted };
}

const publisherOn = ({ db, sql }: { db: Db; sql: Pick<Sql, 'query'> }) =>
  new EventPublisher({ db, sql, pubsub: segue.pubsub, topics: segue.topics, logger: segue.logger }, 10);

/** A publisher's database that holds its first read's answer until `release()`; `readDone` once it has it. */
function heldAfterFirstRead() {
  let reached!: () => void;
  let release!: () => void;
  const readDone = new Promise<void>((resolve) => (reached = resolve));
  const held = new Promise<void>((resolve) => (release = resolve));
  const { db, sql } = counting(async () => {
    reached();
    await held;
  });
  return { db, sql, readDone, release };
}

/** `promise`, or a failure saying what did not come within `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not come within ${ms} ms`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function complete(transitions: readonly Transition[]) {
  return segue.sql.query<Transition>(
    `UPDATE "Transition" SET "status" = 'COMPLETED', "version" = "version" + 1, "completedAt" = now() AT TIME ZONE 'UTC' WHERE "id" = ANY($1::uuid[]) RETURNING *`,
    [transitions.map((t) => t.id)],
  );
}

describe('batch progress and the closing of a batch', () => {
  it('closes the batch in the flush that sees it end, once; every message carries the completedAt stored', async () => {
    const { batch, transitions, messages, stop } = await batchOf(3);
    const { db, sql, counted } = counting();
    const publisher = publisherOn({ db, sql });
    try {
      await publisher.transitionsChanged(transitions);
      await publisher.flush();
      await until(() => messages.length >= 1, { what: 'progress while it runs' });
      expect(messages[0]).toMatchObject({ status: 'QUEUED', completedAt: null });
      expect(counted).toEqual({ reads: 1, closes: 0 }); // the batch with its counts; nothing to close

      await publisher.transitionsChanged(await complete(transitions));
      await publisher.flush();
      await until(() => messages.length >= 2, { what: 'progress at the end' });
      const stored = await segue.db.batch.findUniqueOrThrow({ where: { id: batch.id } });
      expect(stored.completedAt).toBeInstanceOf(Date);
      expect(messages[1]).toMatchObject({ status: 'COMPLETED' });
      expect(new Date(messages[1]!.completedAt!)).toEqual(stored.completedAt);
      expect(counted).toEqual({ reads: 4, closes: 1 }); // two flushes' reads, the read after the close and the end recorded sent; the close
      expect(stored.endSent).toBe(true);

      // A later change (a poster): progress again, no second close.
      await publisher.transitionsChanged(transitions.slice(0, 1));
      await publisher.flush();
      await until(() => messages.length >= 3, { what: 'progress after the end' });
      expect(new Date(messages[2]!.completedAt!)).toEqual(stored.completedAt);
      expect(counted).toEqual({ reads: 5, closes: 1 }); // the read only (the end was recorded sent)
      expect((await segue.db.batch.findUniqueOrThrow({ where: { id: batch.id } })).completedAt).toEqual(stored.completedAt);
    } finally {
      await publisher.close();
      stop();
    }
  });

  it('says the completedAt stored when another process closed the batch between its read and its close', async () => {
    const { batch, transitions, messages, stop } = await batchOf(2);
    const elsewhere = new Date('2026-01-02T03:04:05.678Z');
    const { db, sql } = counting(() =>
      segue.sql.query(`UPDATE "Batch" SET "completedAt" = $2 WHERE "id" = $1::uuid`, [batch.id, elsewhere]),
    );
    const publisher = publisherOn({ db, sql });
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
    const { db, sql } = counting(async () => {
      throw new Error('the database is away');
    });
    const publisher = publisherOn({ db, sql });
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

  it('a batchProgress subscriber never goes back to counts read before the ones it has (two processes publishing out of order)', async () => {
    const { batch, transitions, stop } = await batchOf(2);
    stop();
    const [first, second] = transitions as [Transition, Transition];
    const stream = await batchProgress(segue, batch.accountId, batch.id);
    // Process A reads the counts after the first change and is then held up (descheduled, a slow
    // link) before it publishes them; process B reads and publishes the second change meanwhile.
    const { readDone, release, ...held } = heldAfterFirstRead();
    const a = publisherOn(held);
    const b = publisherOn(segue);
    const start = (t: Transition) =>
      segue.sql.query<Transition>(`UPDATE "Transition" SET "status" = 'IN_PROGRESS', "version" = "version" + 1 WHERE "id" = $1::uuid RETURNING *`, [t.id]);
    try {
      expect((await stream.next()).value).toMatchObject({ counts: { queued: 2, running: 0 } });

      await a.transitionsChanged(await start(first));
      const aFlush = a.flush();
      await readDone;
      await b.transitionsChanged(await start(second));
      await b.flush();
      expect((await stream.next()).value).toMatchObject({ counts: { queued: 0, running: 2 } });

      // A's message, read before B's, reaches Redis after it.
      release();
      await aFlush;
      await b.transitionsChanged(await complete([first]));
      await b.flush();
      // The next thing the subscriber gets is the newer change, not A's older counts.
      expect((await stream.next()).value).toMatchObject({ counts: { queued: 0, running: 1, completed: 1 } });
    } finally {
      release();
      await stream.return?.();
      await a.close();
      await b.close();
    }
  });

  it('a batchProgress subscriber whose snapshot came between a flush\'s read and its close still gets the end', async () => {
    const { batch, transitions, stop } = await batchOf(2);
    stop();
    const { readDone, release, ...held } = heldAfterFirstRead();
    const publisher = publisherOn(held);
    let stream: Awaited<ReturnType<typeof batchProgress>> | undefined;
    try {
      // The flush reads every item ended and the batch still open, then is held up before it closes it.
      await publisher.transitionsChanged(await complete(transitions));
      const flushed = publisher.flush();
      await readDone;
      // Some other transaction commits (its own xid), so the snapshot below is strictly later.
      await segue.sql.query('SELECT pg_current_xact_id()', []);
      // The subscriber's snapshot, read after the flush's: ended items, no completedAt yet.
      stream = await batchProgress(segue, batch.accountId, batch.id);
      expect((await stream.next()).value).toMatchObject({ completedAt: null, counts: { completed: 2 } });
      release();
      await flushed;
      const stored = await segue.db.batch.findUniqueOrThrow({ where: { id: batch.id } });
      // The close's message is not older than that snapshot: it comes through, and the stream ends.
      const end = await within(stream.next(), 5_000, 'the end of the batch');
      expect(end.value).toMatchObject({ completedAt: stored.completedAt, counts: { completed: 2, total: 2 } });
      expect(await stream.next()).toEqual({ value: undefined, done: true });
    } finally {
      release();
      await stream?.return?.();
      await publisher.close();
    }
  });

  it("a batch's transitionUpdated stream stays open on a late message of an end that a retry has undone", async () => {
    const { batch, transitions, stop } = await batchOf(1);
    stop();
    const publisher = publisherOn(segue);
    const stream = await transitionUpdates(segue, batch.accountId, { batchId: batch.id });
    try {
      expect((await stream.next()).value).toMatchObject({ id: transitions[0]!.id, status: 'QUEUED' });
      // The end of the batch's run before this one, published by a process that was held up.
      const late: BatchProgress = {
        kind: 'batch',
        batchId: batch.id,
        accountId: batch.accountId,
        completedAt: new Date(Date.now() - 60_000),
        counts: { total: 1, seconds: 5, queued: 0, running: 0, completed: 0, failed: 1, canceled: 0 },
        status: 'FAILED',
        readAt: { since: 0, xmax: 1, running: 0 },
      };
      await segue.pubsub.publish(segue.topics.batch(batch.accountId, batch.id), late);
      const [started] = await segue.sql.query<Transition>(
        `UPDATE "Transition" SET "status" = 'IN_PROGRESS', "version" = "version" + 1 WHERE "id" = $1::uuid RETURNING *`,
        [transitions[0]!.id],
      );
      await publisher.transitionsChanged([started!]);
      expect(await stream.next()).toMatchObject({ done: false, value: { id: started!.id, status: 'IN_PROGRESS', version: started!.version } });
      // And it goes on: the batch runs again.
      const [done] = await complete(transitions);
      await publisher.transitionsChanged([done!]);
      expect(await stream.next()).toMatchObject({ done: false, value: { id: done!.id, status: 'COMPLETED', version: done!.version } });
    } finally {
      await stream.return?.();
      await publisher.close();
    }
  });

  it.each([
    ['nobody closed it (the process that saw it end died first)', false],
    ['its closer died between its close and its message', true],
  ])('the reconciler sends the end of a batch to batchProgress subscribers when %s', async (_case, closedBefore) => {
    const { batch, transitions, stop } = await batchOf(2);
    stop();
    // Every item ended, and no process flushed the batch's progress.
    await complete(transitions);
    const stream = await batchProgress(segue, batch.accountId, batch.id);
    try {
      expect((await stream.next()).value).toMatchObject({ completedAt: null, counts: { completed: 2, total: 2 } });
      if (closedBefore) {
        // A process closes the batch and dies before its flush: the commit, and no message. A
        // minute ago: a younger end is still its closer's to send.
        expect(await closeFinishedBatches(segue.db, [batch.id])).toMatchObject([{ id: batch.id }]);
        await segue.sql.query(`UPDATE "Batch" SET "completedAt" = "completedAt" - interval '1 minute' WHERE "id" = $1::uuid`, [batch.id]);
      }
      const report = await new Reconciler(segue).run();
      expect(closedBefore ? report.batchEndsSent : report.batchesClosed).toBeGreaterThanOrEqual(1);
      const stored = await segue.db.batch.findUniqueOrThrow({ where: { id: batch.id } });
      expect(stored.completedAt).toBeInstanceOf(Date);
      expect((await within(stream.next(), 5_000, 'the end of the batch')).value).toMatchObject({ completedAt: stored.completedAt });
      expect(await stream.next()).toEqual({ value: undefined, done: true });
      // Recorded as sent: the next pass does not send it again.
      expect(stored.endSent).toBe(true);
      await new Reconciler(segue).run();
      expect(await unsentBatchEnds(segue, 0)).not.toContain(batch.id);
    } finally {
      await stream.return?.();
    }
  });

  it('a mark records the end it was read with: a batch reopened and closed again keeps its new end unsent, and the reconciler sends it', async () => {
    const { batch, transitions, stop } = await batchOf(1);
    stop();
    await complete(transitions);
    const [first] = await closeFinishedBatches(segue.db, [batch.id]);
    // Reopened by a retry, and closed again by a process that dies before its message…
    await segue.db.batch.update({ where: { id: batch.id }, data: { completedAt: null } });
    await new Promise((resolve) => setTimeout(resolve, 5));
    const [second] = await closeFinishedBatches(segue.db, [batch.id]);
    expect(second!.completedAt.getTime()).toBeGreaterThan(first!.completedAt.getTime());
    // …while a flush that read the first end records it sent: that leaves the second unsent.
    await markBatchEndsSent(segue, [first!]);
    expect(await unsentBatchEnds(segue, 0)).toContain(batch.id);
    await segue.sql.query(`UPDATE "Batch" SET "completedAt" = "completedAt" - interval '1 minute' WHERE "id" = $1::uuid`, [batch.id]);
    await new Reconciler(segue).run();
    expect((await segue.db.batch.findUniqueOrThrow({ where: { id: batch.id } })).endSent).toBe(true);
    expect(await unsentBatchEnds(segue, 0)).not.toContain(batch.id);
  });

  it('records no end sent when its message failed, and leaves an end under 10 s old to its closer', async () => {
    const { batch, transitions, stop } = await batchOf(1);
    stop();
    const [done] = await complete(transitions);
    // A flush whose messages Redis refuses: the batch closes, its end is not recorded sent.
    const refusing = new Proxy(segue.pubsub, {
      get: (target, key) => (key === 'publish' ? () => Promise.reject(new Error('Redis is away')) : Reflect.get(target, key)),
    });
    const publisher = new EventPublisher({ db: segue.db, sql: segue.sql, pubsub: refusing, topics: segue.topics, logger: segue.logger }, 10);
    await publisher.transitionsChanged([done!]).catch(() => undefined);
    await publisher.flush();
    await publisher.close();
    const stored = await segue.db.batch.findUniqueOrThrow({ where: { id: batch.id } });
    expect(stored.completedAt).toBeInstanceOf(Date);
    expect(stored.endSent).toBe(false);
    // Just closed: still its closer's to send (it retries while it lives), not the reconciler's.
    expect(await unsentBatchEnds(segue, 10_000)).not.toContain(batch.id);
    expect(await unsentBatchEnds(segue, 0)).toContain(batch.id);
  });

  it('batchProgress takes a message without a read point (a process not yet updated) and still drops an older one after it', async () => {
    const { batch, transitions, stop } = await batchOf(2);
    stop();
    const stream = await batchProgress(segue, batch.accountId, batch.id);
    const publisher = publisherOn(segue);
    const topic = segue.topics.batch(batch.accountId, batch.id);
    const progress = (counts: Partial<BatchProgress['counts']>, readAt?: BatchProgress['readAt']): BatchProgress => ({
      kind: 'batch',
      batchId: batch.id,
      accountId: batch.accountId,
      completedAt: null,
      counts: { total: 2, seconds: 10, queued: 0, running: 0, completed: 0, failed: 0, canceled: 0, ...counts },
      status: 'RUNNING',
      ...(readAt ? { readAt } : {}),
    });
    try {
      const first = (await stream.next()).value as { readAt: BatchProgress['readAt'] };
      expect(first).toMatchObject({ counts: { queued: 2 } });
      await segue.pubsub.publish(topic, progress({ queued: 1, running: 1 }));
      expect((await stream.next()).value).toMatchObject({ counts: { queued: 1, running: 1 } });
      // Read before the snapshot: dropped, though the message before it had no point.
      await segue.pubsub.publish(topic, progress({ queued: 2 }, { ...first.readAt!, xmax: first.readAt!.xmax - 1 }));
      await publisher.transitionsChanged(await complete(transitions.slice(0, 1)));
      await publisher.flush();
      expect((await within(stream.next(), 5_000, 'the next progress')).value).toMatchObject({ counts: { queued: 1, completed: 1 } });
    } finally {
      await stream.return?.();
      await publisher.close();
    }
  });

  it('says nothing of a batch deleted between its read and its close (no message from before the close)', async () => {
    const { batch, transitions, messages, stop } = await batchOf(2);
    const { db, sql } = counting(() => segue.sql.query(`DELETE FROM "Batch" WHERE "id" = $1::uuid`, [batch.id]));
    const publisher = publisherOn({ db, sql });
    try {
      await publisher.transitionsChanged(await complete(transitions));
      await publisher.flush();
      // A later change of another batch goes out: by then this flush's messages, if any, would have.
      const other = await batchOf(1);
      await publisher.transitionsChanged(other.transitions);
      await publisher.flush();
      await until(() => other.messages.length >= 1, { what: 'the other batch\'s progress' });
      other.stop();
      expect(messages).toEqual([]);
    } finally {
      await publisher.close();
      stop();
    }
  });

  it('a closed publisher does not retry a failed flush (its pool and Redis are gone)', async () => {
    const { transitions, stop } = await batchOf(1);
    stop();
    const { db, sql, counted } = counting(async () => {
      throw new Error('the database is away');
    });
    const publisher = publisherOn({ db, sql });
    await publisher.transitionsChanged(transitions);
    await publisher.close();
    expect(counted.reads).toBe(1);
    // The retry would come after RETRY_MS (1 s).
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(counted.reads).toBe(1);
  });
});
