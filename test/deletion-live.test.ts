import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventPublisher } from '../src/events/publisher.ts';
import { closePubSub, createPubSub } from '../src/events/pubsub.ts';
import { idOf } from '../src/graphql/ids.ts';
import { createTestAccount, gql } from './helpers/app.ts';
import { DeleteTransitions } from './helpers/credential-operations.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { BatchProgress, CancelTransition, CreateTransitions, GenerateBatch, TransitionUpdated } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { freePort, run } from './helpers/process.ts';
import { startPrivateRedis } from './helpers/services.ts';
import { sseClient, subscribe, wsClient, type Subscription } from './helpers/subscribe.ts';
import { until } from './helpers/wait.ts';

// No worker: queued transitions stay queued, so a batch stays open for as long as a test needs it.
let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({ emulator: { latencyMs: 100 } });
});
afterAll(() => p?.close());

const url = () => p.app.graphqlUrl;

/** A stream the server completes within `ms`; a stream left open fails the test here, not at its timeout. */
const ends = (sub: Subscription<unknown>, what: string, ms = 10_000) =>
  Promise.race([sub.done, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} did not end`)), ms).unref())]);

/** Whether the server has completed a stream: read after this turn's messages, so a completion already in is seen. */
const state = (sub: Subscription<unknown>) =>
  Promise.race([sub.done.then(() => 'ended', () => 'failed'), new Promise((resolve) => setTimeout(resolve, 0, 'open'))]);

/** A new account with a batch of `n`, generated (queued: no worker runs here). */
async function queuedBatch(n: number) {
  const account = await createTestAccount(p.app.segue);
  const created = (await gql(url(), account.apiKey, CreateTransitions, { input: { transitions: transitionInputs(n), generate: true } })).data!
    .createTransitions;
  return { account, ids: created.transitions.map((t) => t.id), batchId: created.batch!.id };
}

/**
 * A queued batch whose transitions have all ended while it stays open: as a batch is when the
 * process that would close it died (the reconciler closes it later; none runs here), the one
 * state in which a batch can be deleted while its streams are open.
 */
async function endedButOpenBatch(n: number) {
  const batch = await queuedBatch(n);
  // The API's progress of the create goes out first: a flush after the write below would close the batch.
  await p.app.segue.events.flush();
  // Written directly: no one is told.
  await p.app.segue.db.transition.updateMany({ where: { id: { in: batch.ids.map((id) => idOf('Transition', id)) } }, data: { status: 'CANCELED' } });
  return batch;
}

/** One client of each transport, so every stream is checked over WebSocket and SSE. */
function clients(apiKey: string) {
  const ws = wsClient(url(), apiKey);
  const sse = sseClient(url(), apiKey);
  return { transports: [['WebSocket', ws], ['SSE', sse]] as const, close: () => Promise.all([ws.dispose(), sse.dispose()]) };
}

describe('deleteTransitions, as the live streams see it', () => {
  it("a deleted transition's streams end, and its batch's viewers get the batch's new counts, over WebSocket and SSE", { timeout: 60_000 }, async () => {
    const { account, ids, batchId } = await queuedBatch(3);
    const [gone, stays, other] = ids;
    await gql(url(), account.apiKey, CancelTransition, { id: gone! });
    const { transports, close } = clients(account.apiKey);
    try {
      const streams = transports.map(([name, client]) => ({
        name,
        one: subscribe(client, TransitionUpdated, { id: gone! }, (d) => d.transitionUpdated),
        neighbour: subscribe(client, TransitionUpdated, { id: stays! }, (d) => d.transitionUpdated),
        batch: subscribe(client, TransitionUpdated, { batchId }, (d) => d.transitionUpdated),
        progress: subscribe(client, BatchProgress, { id: batchId }, (d) => d.batchProgress),
      }));
      for (const s of streams) {
        expect((await s.one.first).status).toBe('CANCELED');
        await until(() => s.batch.events.length === 3, { what: `${s.name}: the batch stream's snapshot` });
        await until(() => s.progress.events.at(-1)?.canceled === 1, { what: `${s.name}: the canceled one counted` });
        await s.neighbour.first;
      }

      await gql(url(), account.apiKey, DeleteTransitions, { input: { ids: [gone!] } });

      for (const s of streams) {
        await ends(s.one, `${s.name}: the deleted transition's stream`);
        expect([s.one.events.length, s.one.errors]).toEqual([1, []]);
        // The batch lost an item: its viewers see the count a query gives, and it stays open.
        const counted = await until(() => s.progress.events.find((e) => e.total === 2), { what: `${s.name}: the batch's new counts` });
        expect(counted).toMatchObject({ total: 2, queued: 2, canceled: 0, completedAt: null });
        for (const sub of [s.neighbour, s.batch, s.progress]) expect(await state(sub)).toBe('open');
      }

      // The streams that stayed open still carry the changes after it, and the batch ends as usual.
      await gql(url(), account.apiKey, CancelTransition, { id: stays! });
      for (const s of streams) {
        await until(() => s.neighbour.events.some((e) => e.status === 'CANCELED'), { what: `${s.name}: the other transition's change` });
        await until(() => s.batch.events.some((e) => e.id === stays && e.status === 'CANCELED'), { what: `${s.name}: the batch stream's change` });
      }
      await gql(url(), account.apiKey, CancelTransition, { id: other! });
      for (const s of streams) {
        await ends(s.progress, `${s.name}: batchProgress`);
        expect(s.progress.events.at(-1)).toMatchObject({ total: 2, canceled: 2, status: 'CANCELED' });
        expect(await state(s.neighbour)).toBe('open');
      }
    } finally {
      await close();
    }
  });

  it('a batch deleted with its last items ends its batchProgress and transitionUpdated streams, with no event after the snapshot', { timeout: 60_000 }, async () => {
    const { account, ids, batchId } = await endedButOpenBatch(2);
    const { transports, close } = clients(account.apiKey);
    try {
      const streams = transports.map(([name, client]) => ({
        name,
        batch: subscribe(client, TransitionUpdated, { batchId }, (d) => d.transitionUpdated),
        progress: subscribe(client, BatchProgress, { id: batchId }, (d) => d.batchProgress),
      }));
      for (const s of streams) {
        expect(await s.progress.first).toMatchObject({ total: 2, canceled: 2, completedAt: null });
        await until(() => s.batch.events.length === 2, { what: `${s.name}: the batch stream's snapshot` });
        for (const sub of [s.batch, s.progress]) expect(await state(sub)).toBe('open');
      }

      await gql(url(), account.apiKey, DeleteTransitions, { input: { ids } });
      expect(await p.app.segue.db.batch.count({ where: { id: idOf('Batch', batchId) } })).toBe(0);

      for (const s of streams) {
        await ends(s.progress, `${s.name}: batchProgress of the deleted batch`);
        await ends(s.batch, `${s.name}: transitionUpdated of the deleted batch`);
        expect([s.progress.events.length, s.batch.events.length, s.progress.errors, s.batch.errors]).toEqual([1, 2, [], []]);
      }
    } finally {
      await close();
    }
  });

  it('the CLI watching a batch deleted with its transitions says so, and exits 1', { timeout: 60_000 }, async () => {
    const { account, ids, batchId } = await endedButOpenBatch(2);
    const watch = run('npm', ['run', 'cli', '--', 'batches', 'watch', batchId], { SEGUE_API_URL: p.app.url, SEGUE_API_KEY: account.apiKey });
    await watch.waitFor(/2\/2 ended: 0 completed, 0 failed, 2 canceled/);
    await gql(url(), account.apiKey, DeleteTransitions, { input: { ids } });
    expect((await watch.exited).code).toBe(1);
    expect(watch.output()).toContain(`NOT_FOUND: Batch ${batchId} was deleted while it was watched.`);
  });

  it("an ended batch's transitionUpdated stream no longer waits for the poster of a transition deleted meanwhile", { timeout: 60_000 }, async () => {
    const { account, ids, batchId } = await queuedBatch(2);
    const [awaiting, done] = ids.map((id) => idOf('Transition', id));
    // Both COMPLETED, the batch closed, one poster still to come: the stream would wait for it (POSTER_GRACE_MS, 30 s).
    const { db } = p.app.segue;
    await db.transition.update({ where: { id: awaiting! }, data: { status: 'COMPLETED', completedAt: new Date() } });
    await db.transition.update({ where: { id: done! }, data: { status: 'COMPLETED', completedAt: new Date(), posterUrl: 'http://127.0.0.1/poster.jpg' } });
    await db.batch.update({ where: { id: idOf('Batch', batchId) }, data: { completedAt: new Date() } });
    const { transports, close } = clients(account.apiKey);
    try {
      const streams = transports.map(([name, client]) => ({ name, batch: subscribe(client, TransitionUpdated, { batchId }, (d) => d.transitionUpdated) }));
      for (const s of streams) await until(() => s.batch.events.length === 2, { what: `${s.name}: the batch stream's snapshot` });
      await new Promise((r) => setTimeout(r, 300));
      for (const s of streams) expect(await state(s.batch)).toBe('open');

      await gql(url(), account.apiKey, DeleteTransitions, { input: { ids: [ids[0]!] } });
      for (const s of streams) {
        await ends(s.batch, `${s.name}: the ended batch's stream`);
        expect(s.batch.errors).toEqual([]);
      }
    } finally {
      await close();
    }
  });

  it('two deletions that each take one of a batch\'s last transitions, at once, delete the batch', { timeout: 60_000 }, async () => {
    for (let round = 0; round < 5; round++) {
      const { account, ids, batchId } = await queuedBatch(2);
      for (const id of ids) await gql(url(), account.apiKey, CancelTransition, { id });
      const answers = await Promise.all(ids.map((id) => gql(url(), account.apiKey, DeleteTransitions, { input: { ids: [id] } })));
      expect(answers.map((a) => a.errors)).toEqual([undefined, undefined]);
      expect(await p.app.segue.db.batch.count({ where: { id: idOf('Batch', batchId) } })).toBe(0);
    }
  });

  it('a transition deleted while it is generated again: one of them wins, the other is told why, and neither deadlocks', { timeout: 60_000 }, async () => {
    for (let round = 0; round < 10; round++) {
      const { account, ids } = await queuedBatch(2);
      for (const id of ids) await gql(url(), account.apiKey, CancelTransition, { id });
      const [generated, deleted] = await Promise.all([
        gql(url(), account.apiKey, GenerateBatch, { input: { transitionIds: ids } }),
        gql(url(), account.apiKey, DeleteTransitions, { input: { ids: [ids[0]!] } }),
      ]);
      const codes = [generated, deleted].map((r) => r.errors?.[0]?.extensions?.code ?? 'ok');
      // Generated first, the deletion meets a queued transition; deleted first, the batch meets a missing one.
      expect([['ok', 'CONFLICT'], ['NOT_FOUND', 'ok'], ['CONFLICT', 'ok']]).toContainEqual(codes);
    }
  });

  it('deletion messages Redis refused go again once it is back: no later change would end their streams', { timeout: 60_000 }, async () => {
    const port = await freePort();
    let redis = await startPrivateRedis(port);
    const pubsub = createPubSub(redis.url);
    const { db, sql, topics, logger } = p.app.segue;
    const publisher = new EventPublisher({ db, sql, pubsub, topics, logger }, 10);
    const accountId = '00000000-0000-7000-8000-000000000001';
    const transitionId = '00000000-0000-7000-8000-000000000002';
    const listener = new Redis(redis.url, { maxRetriesPerRequest: null });
    // Its reconnects while the server is away are expected.
    listener.on('error', () => undefined);
    try {
      await redis.stop();
      // Redis is away: the publish fails (after the publisher connection's own retries), and waits.
      await publisher.deleted({ accountId, transitions: [{ id: transitionId, batchId: null }], changedBatchIds: [], deletedBatchIds: [] });
      redis = await startPrivateRedis(port);
      const heard: string[] = [];
      listener.on('message', (_channel: string, message: string) => heard.push(message));
      await until(async () => ((await listener.subscribe(topics.transition(accountId, null, transitionId))) as number) > 0, { what: 'the listener subscribed again' });
      const message = JSON.parse(await until(() => heard[0], { what: 'the deletion, published again' }));
      expect(message).toEqual({ kind: 'transition-deleted', id: transitionId, accountId });
    } finally {
      listener.disconnect();
      await publisher.close();
      await closePubSub(pubsub).catch(() => undefined);
      await redis.stop();
    }
  });
});
