import { Redis } from 'ioredis';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeId } from '../src/graphql/ids.ts';
import { cancelBatch, createAndGenerate } from '../src/domain/generation.ts';
import { gql } from './helpers/app.ts';
import { transitionInputs, transitionInput } from './helpers/fixtures.ts';
import { BatchProgress, CreateTransitions, TransitionUpdated } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { metric } from './helpers/metrics.ts';
import { sseClient, subscribe, wsClient } from './helpers/subscribe.ts';
import { until } from './helpers/wait.ts';
import { EndingStream, LiveFeed } from '../src/events/live.ts';
import type { BatchProgress as BatchProgressMessage } from '../src/events/messages.ts';
import { RowStream } from '../src/events/row-stream.ts';
import { batchProgress } from '../src/events/streams.ts';

let p: Pipeline;
/** A Redis client of the test's own, to see the API's subscriptions from outside. */
const adminRedis = () => {
  const target = p.app.segue.config.redis;
  return new Redis(target.mode === 'single' ? target.url : 'redis://127.0.0.1:6379');
};
beforeAll(async () => {
  // No worker yet: each test starts one when its subscribers are in place.
  p = await startPipeline({
    emulator: { latencyMs: 300, capacity: 5 },
    env: { FAL_CONCURRENCY: '8', SUBSCRIPTIONS_PER_CONNECTION: '3', SUBSCRIPTIONS_PER_ACCOUNT: '6' },
  });
});
afterAll(() => p?.close());

const RANK: Record<string, number> = { QUEUED: 0, SUBMITTED: 1, IN_PROGRESS: 2, COMPLETED: 3 };

type Update = { id: string; status: string; version: number; posterUrl?: string | null };

/** Per transition: the statuses in the order received, checked to move only forward. */
function paths(events: Update[]) {
  const byId = new Map<string, Update[]>();
  for (const e of events) byId.set(e.id, [...(byId.get(e.id) ?? []), e]);
  for (const [, list] of byId) {
    for (let i = 1; i < list.length; i++) {
      expect(list[i]!.version).toBeGreaterThan(list[i - 1]!.version);
      expect(RANK[list[i]!.status]).toBeGreaterThanOrEqual(RANK[list[i - 1]!.status]!);
    }
  }
  return byId;
}

describe('transitionUpdated and batchProgress', () => {
  it('over WebSocket and SSE, a batch of 20: every path QUEUED → … → COMPLETED in order, its poster, then completion', { timeout: 60_000 }, async () => {
    const account = await p.account();
    const created = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: transitionInputs(20), generate: true },
    });
    const batchId = created.data!.createTransitions.batch!.id;
    const ws = wsClient(p.app.url + '/graphql', account.apiKey);
    const sse = sseClient(p.app.graphqlUrl, account.apiKey);
    const viaWs = subscribe(ws, TransitionUpdated, { batchId }, (d) => d.transitionUpdated);
    const viaSse = subscribe(sse, TransitionUpdated, { batchId }, (d) => d.transitionUpdated);
    const progress = subscribe(ws, BatchProgress, { id: batchId }, (d) => d.batchProgress);
    // The snapshot comes first: all 20, QUEUED.
    await until(() => viaWs.events.length >= 20 && viaSse.events.length >= 20 && progress.events.length >= 1, { what: 'snapshots' });
    expect(viaWs.events.slice(0, 20).every((e) => e.status === 'QUEUED')).toBe(true);
    expect(progress.events[0]).toMatchObject({ status: 'QUEUED', queued: 20, total: 20 });

    await p.startInlineWorker();
    await Promise.all([viaWs.done, viaSse.done, progress.done]);
    for (const sub of [viaWs, viaSse]) {
      expect(sub.errors).toEqual([]);
      const byId = paths(sub.events);
      expect(byId.size).toBe(20);
      for (const [, path] of byId) {
        expect(path[0]!.status).toBe('QUEUED');
        expect(path.at(-1)!.status).toBe('COMPLETED');
        expect(path.length).toBeGreaterThanOrEqual(3); // at least QUEUED, SUBMITTED, COMPLETED
        // The stream stays open for the posters that follow the videos on the media queue.
        expect(path.at(-1)!.posterUrl).toMatch(/\/media\/.+\.jpg$/);
      }
    }
    expect(progress.events.at(-1)).toMatchObject({ status: 'COMPLETED', completed: 20, total: 20 });
    expect(progress.events.at(-1)!.completedAt).not.toBeNull();
    const completedCounts = progress.events.map((e) => e.completed);
    expect([...completedCounts].sort((a, b) => a - b)).toEqual(completedCounts);
    await ws.dispose();
  });

  it('a subscription to one transition starts with its state and follows it', { timeout: 30_000 }, async () => {
    const account = await p.account();
    const { transitions } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
    const ws = wsClient(p.app.url + '/graphql', account.apiKey);
    const sub = subscribe(ws, TransitionUpdated, { id: encodeId('Transition', transitions[0]!.id) }, (d) => d.transitionUpdated);
    await until(() => sub.events.at(-1)?.status === 'COMPLETED', { what: 'completion' });
    expect(sub.events[0]!.id).toBe(encodeId('Transition', transitions[0]!.id));
    paths(sub.events);
    sub.stop();
    await ws.dispose();
  });

  it("the account-wide stream carries the account's changes and never another account's", { timeout: 30_000 }, async () => {
    const [a, b] = [await p.account(), await p.account()];
    const ws = wsClient(p.app.url + '/graphql', b.apiKey);
    const bStream = subscribe(ws, TransitionUpdated, {}, (d) => d.transitionUpdated);
    await new Promise((r) => setTimeout(r, 200)); // the account stream has no snapshot to wait for
    const aRun = await createAndGenerate(p.app.segue, a.id, { transitions: transitionInputs(3) });
    const bRun = await createAndGenerate(p.app.segue, b.id, { transitions: transitionInputs(1) });
    await p.settled(aRun.batch!.id);
    await p.settled(bRun.batch!.id);
    await until(() => bStream.events.some((e) => e.status === 'COMPLETED'), { what: "B's completion" });
    const bIds = new Set(bRun.transitions.map((t) => encodeId('Transition', t.id)));
    expect(bStream.events.every((e) => bIds.has(e.id))).toBe(true);
    bStream.stop();
    await ws.dispose();
  });
});

describe('access', () => {
  it("subscribing to another account's batch or transition is NOT_FOUND, over WS and SSE", async () => {
    const [a, b] = [await p.account(), await p.account()];
    const { transitions, batch } = await createAndGenerate(p.app.segue, a.id, { transitions: [transitionInput()] });
    const ws = wsClient(p.app.url + '/graphql', b.apiKey);
    const sse = sseClient(p.app.graphqlUrl, b.apiKey);
    const cases = [
      subscribe(ws, TransitionUpdated, { batchId: encodeId('Batch', batch!.id) }, (d) => d.transitionUpdated),
      subscribe(ws, TransitionUpdated, { id: encodeId('Transition', transitions[0]!.id) }, (d) => d.transitionUpdated),
      subscribe(sse, BatchProgress, { id: encodeId('Batch', batch!.id) }, (d) => d.batchProgress),
    ];
    for (const sub of cases) {
      await sub.done;
      expect(sub.events).toEqual([]);
      expect(sub.errors.map((e) => e.extensions?.code)).toEqual(['NOT_FOUND']);
    }
    await ws.dispose();
  });

  it('refuses unauthenticated subscribers: WebSocket closes with 4403, SSE answers UNAUTHENTICATED', async () => {
    let closedWith = 0;
    const ws = wsClient(p.app.url + '/graphql', null, { onClose: (code) => (closedWith = code) });
    const viaWs = subscribe(ws, TransitionUpdated, {}, (d) => d.transitionUpdated);
    await expect(viaWs.done).rejects.toBeDefined();
    expect(closedWith).toBe(4403);
    let wrongClosedWith = 0;
    const wrong = wsClient(p.app.url + '/graphql', 'sg_not-a-key', { onClose: (code) => (wrongClosedWith = code) });
    await expect(subscribe(wrong, TransitionUpdated, {}, (d) => d.transitionUpdated).done).rejects.toBeDefined();
    expect(wrongClosedWith).toBe(4403);

    const sse = sseClient(p.app.graphqlUrl, null);
    const viaSse = subscribe(sse, TransitionUpdated, {}, (d) => d.transitionUpdated);
    await viaSse.done;
    expect(viaSse.errors.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
  });

  it('batchProgress subscriptions stopped by their client let go of their one Redis channel and their places', async () => {
    const account = await p.account();
    // No worker runs here: the batch stays open, so only the client ends these streams.
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
    const id = encodeId('Batch', batch!.id);
    const redis = adminRedis();
    const ws = wsClient(p.app.url + '/graphql', account.apiKey);
    const listeners = async () => ((await redis.pubsub('NUMSUB', p.app.segue.topics.batch(account.id, batch!.id))) as [string, number])[1];
    // Started (its snapshot came) or refused: a refusal fails here at once rather than at the timeout.
    const started = async (s: ReturnType<typeof subscribe>) => {
      await Promise.race([s.first, s.done]);
      expect(s.errors).toEqual([]);
      return s;
    };
    try {
      const three = await Promise.all(Array.from({ length: 3 }, () => started(subscribe(ws, BatchProgress, { id }, (d) => d.batchProgress))));
      expect(three[0]!.events[0]).toMatchObject({ total: 1, completedAt: null });
      // One Redis subscription for the three, fanned out here.
      expect(await listeners()).toBe(1);
      three.forEach((s) => s.stop());
      await until(async () => (await listeners()) === 0, { what: 'the batch channel let go' });
      // All three places of this connection are free again.
      const again = await Promise.all(Array.from({ length: 3 }, () => started(subscribe(ws, BatchProgress, { id }, (d) => d.batchProgress))));
      again.forEach((s) => s.stop());
    } finally {
      await ws.dispose();
      await cancelBatch(p.app.segue, account.id, batch!.id);
      redis.disconnect();
    }
  });

  it('a row stream ends once however it ends: returned before a read, after its snapshot or while it waits; or failed by a message it cannot use', async () => {
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
    const { segue } = p.app;
    const channel = segue.topics.batch(account.id, batch!.id);
    const redis = adminRedis();
    const open = async () => {
      const stream = (await batchProgress(segue, account.id, batch!.id)) as EndingStream<unknown>;
      let cleanups = 0;
      stream.addCleanup(() => cleanups++);
      return { stream, cleanups: () => cleanups };
    };
    try {
      const unread = await open();
      expect(await unread.stream.return!()).toEqual({ value: undefined, done: true });
      expect(await unread.stream.next()).toEqual({ value: undefined, done: true });

      // Its snapshot was read before the stream existed: returned once it has gone out.
      const snapshotting = await open();
      expect((await snapshotting.stream.next()).done).toBe(false);
      await snapshotting.stream.return!();
      expect(await snapshotting.stream.next()).toEqual({ value: undefined, done: true });

      const waiting = await open();
      expect((await waiting.stream.next()).done).toBe(false);
      const second = waiting.stream.next();
      await waiting.stream.return!();
      expect(await second).toEqual({ value: undefined, done: true });
      for (const s of [unread, snapshotting, waiting]) expect(s.cleanups()).toBe(1);

      // A view whose rows a message breaks: the read fails, and the stream still lets go of its feed.
      const feed = await LiveFeed.subscribe<BatchProgressMessage>(segue.pubsub, [{ trigger: channel, pattern: false }], 10);
      const failing = new RowStream(
        {
          apply: () => {
            throw new Error('a message this view cannot use');
          },
          ended: () => false,
        },
        feed,
        'snapshot',
      );
      let cleanups = 0;
      failing.addCleanup(() => cleanups++);
      expect(await failing.next()).toEqual({ value: 'snapshot', done: false });
      // Expected before the message goes out: the read may fail before PUBLISH even answers.
      const read = expect(failing.next()).rejects.toThrow('a message this view cannot use');
      await redis.publish(channel, JSON.stringify({ kind: 'batch', completedAt: null, counts: {} }));
      await read;
      expect(cleanups).toBe(1);
      await until(async () => ((await redis.pubsub('NUMSUB', channel)) as [string, number])[1] === 0, { what: 'the batch channel let go' });
    } finally {
      await cancelBatch(segue, account.id, batch!.id);
      redis.disconnect();
    }
  });

  it('a subscription no one will read keeps nothing (its client went away during setup, or it accepts no event stream: 406): its stream is ended, its place and its credential watch let go', async () => {
    const account = await p.account();
    const draft = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: [transitionInput()] } });
    const id = draft.data!.createTransitions.transitions[0]!.id;
    const body = JSON.stringify({ query: 'subscription($id: ID) { transitionUpdated(id: $id) { id } }', variables: { id } });
    const watches = () => metric(p.app.url, 'segue_credential_watches', '', true);
    const before = await watches();
    // Each request is sent whole, and its socket cut as soon as it has left: the API is then
    // still authenticating it or setting up its stream.
    await Promise.all(
      Array.from({ length: 6 }, () =>
        new Promise<void>((resolve) => {
          const req = request(p.app.graphqlUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${account.apiKey}` },
          });
          req.on('error', () => resolve());
          req.on('close', () => resolve());
          req.end(body, () => req.destroy());
        }),
      ),
    );
    // Six that wait for their answer, but accept only JSON: Yoga sets each up, then answers 406.
    for (const accept of ['application/json', 'application/graphql-response+json', 'multipart/mixed', 'application/json', 'application/json', 'application/json']) {
      const refused = await fetch(p.app.graphqlUrl, { method: 'POST', headers: { 'content-type': 'application/json', accept, authorization: `Bearer ${account.apiKey}` }, body });
      expect(refused.status, accept).toBe(406);
    }
    // The account's six places (SUBSCRIPTIONS_PER_ACCOUNT) come free, each as soon as its setup
    // ends and its stream with it.
    const sse = sseClient(p.app.graphqlUrl, account.apiKey);
    try {
      const six = await until(
        async () => {
          const tried = Array.from({ length: 6 }, () => subscribe(sse, TransitionUpdated, { id }, (d) => d.transitionUpdated));
          await Promise.all(tried.map((s) => Promise.race([s.first, s.done])));
          if (tried.every((s) => s.errors.length === 0)) return tried;
          tried.forEach((s) => s.stop());
          return null;
        },
        { what: 'six free places', timeoutMs: 5_000, intervalMs: 200 },
      );
      six.forEach((s) => s.stop());
    } finally {
      sse.dispose();
    }
    // Nor is any of them still watched for its key's revocation (which would hold the stream).
    await until(async () => (await watches()) <= before, { what: 'no credential watch left', timeoutMs: 5_000 });
  });

  it('over SSE, server-sent events as graphql-sse reads them: a comment first, each result one `event: next`, errors masked; a client that leaves mid-stream lets go of its stream', async () => {
    const account = await p.account();
    const draft = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: [transitionInput()] } });
    const id = draft.data!.createTransitions.transitions[0]!.id;
    const { segue } = p.app;
    // The account is new: this is its one transition.
    const row = await segue.db.transition.findFirstOrThrow({ where: { accountId: account.id } });
    const open = () => metric(p.app.url, 'segue_subscriptions_open', '', true);
    const before = await open();
    const req = request(p.app.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${account.apiKey}` },
    });
    const response = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
      req.end(JSON.stringify({ query: 'subscription($id: ID) { transitionUpdated(id: $id) { id status version } }', variables: { id } }));
    });
    try {
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toBe('text/event-stream');
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      const frames = () => text.split('\n\n').slice(0, -1);
      const events = () => frames().filter((f) => f.startsWith('event: next\ndata: ')).map((f) => JSON.parse(f.slice('event: next\ndata: '.length)));
      // Its snapshot: the transition as it stands.
      await until(() => events().length === 1, { what: 'the snapshot event' });
      expect(frames()[0]).toBe(':');
      expect(events()[0]).toEqual({ data: { transitionUpdated: { id, status: 'DRAFT', version: row.version } } });
      expect(await open()).toBe(before + 1);

      // A change whose row cannot be shown (its status missing): the event carries the error, masked.
      await segue.pubsub.publish(segue.topics.transition(account.id, null, row.id), {
        kind: 'transition', id: row.id, accountId: account.id, batchId: null, run: row.run, status: row.status, version: row.version + 1, full: true,
        changed: { id: row.id, accountId: account.id, version: row.version + 1 },
      });
      await until(() => events().length === 2, { what: 'the event with an error' });
      expect(events()[1]).toEqual({
        data: null,
        errors: [{ message: 'Internal error. It has been logged.', locations: [expect.any(Object)], path: ['transitionUpdated', 'status'], extensions: { code: 'INTERNAL' } }],
      });
    } finally {
      // Leaves without a word: its stream ends, and its place is free again.
      req.destroy();
    }
    await until(async () => (await open()) === before, { what: 'the subscription let go', timeoutMs: 5_000 });
  });

  it('limits subscriptions per connection and per account with LIMIT_EXCEEDED', async () => {
    const account = await p.account();
    const ws = wsClient(p.app.url + '/graphql', account.apiKey);
    const open = Array.from({ length: 3 }, () => subscribe(ws, TransitionUpdated, {}, (d) => d.transitionUpdated));
    await new Promise((r) => setTimeout(r, 300));
    const fourth = subscribe(ws, TransitionUpdated, {}, (d) => d.transitionUpdated);
    await fourth.done;
    expect(fourth.errors.map((e) => e.extensions?.code)).toEqual(['LIMIT_EXCEEDED']);

    const ws2 = wsClient(p.app.url + '/graphql', account.apiKey);
    const more = Array.from({ length: 3 }, () => subscribe(ws2, TransitionUpdated, {}, (d) => d.transitionUpdated));
    await new Promise((r) => setTimeout(r, 300));
    const ws3 = wsClient(p.app.url + '/graphql', account.apiKey);
    const seventh = subscribe(ws3, TransitionUpdated, {}, (d) => d.transitionUpdated);
    await seventh.done;
    expect(seventh.errors.map((e) => e.extensions?.code)).toEqual(['LIMIT_EXCEEDED']);
    // Closing subscriptions frees their places: a subscription to one transition starts with its
    // state, so a place is proven by an event, not by the absence of an error.
    const draft = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: [transitionInput()] } });
    const id = draft.data!.createTransitions.transitions[0]!.id;
    [...open, ...more].forEach((s) => s.stop());
    await until(async () => {
      const again = subscribe(ws3, TransitionUpdated, { id }, (d) => d.transitionUpdated);
      await Promise.race([again.first, again.done, new Promise((r) => setTimeout(r, 1_000))]);
      again.stop();
      return again.events.length > 0 && again.errors.length === 0;
    }, { what: 'a free place' });
    await Promise.all([ws.dispose(), ws2.dispose(), ws3.dispose()]);
  });
});
