import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { parse } from 'graphql';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cancelBatch, createAndGenerate } from '../src/domain/generation.ts';
import { transitionUpdates } from '../src/events/streams.ts';
import type { Transition } from '../src/generated/prisma/client.ts';
import { encodeId, idOf } from '../src/graphql/ids.ts';
import { changeTransition } from '../src/domain/state-machine.ts';
import { CreateAccessToken } from './helpers/credential-operations.ts';
import { codes, createTestAccount, gql, startTestApp, type TestApp, withoutJobs } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { makeImage } from './helpers/images.ts';
import { BatchProgress, CreateTransitions, GeneratedTransitionUpdated } from './helpers/operations.ts';
import { uploadImage } from './helpers/uploads.ts';
import { TransitionUpdated } from './helpers/operations.ts';
import { dropQueueKeys } from './helpers/pipeline.ts';
import { metricsOf, sample } from './helpers/metrics.ts';
import { statementsDuring } from './helpers/statements.ts';
import { sseClient, subscribe, wsClient } from './helpers/subscribe.ts';
import { until } from './helpers/wait.ts';

/**
 * What a subscription reads from the database. Setting one up: after an API restart every
 * browser sets one up again at once. A batch stream starts from one statement (its transitions
 * and its end, read together, which is also the check that the batch is the account's); a
 * transition stream from one. A foreign id is NOT_FOUND and leaves nothing subscribed at Redis.
 * Then each event is shown from the row it carries, with no read: every field of one message is
 * of one version.
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


const noQueue = () => withoutJobs(app.segue);

async function batchOf(n: number) {
  const account = await createTestAccount(app.segue);
  const { batch, transitions } = await createAndGenerate(noQueue(), account.id, { transitions: transitionInputs(n) });
  // The batch's progress goes out now, not while a test counts statements.
  await app.segue.events.flush();
  return { account, batch: batch!, transitions };
}

/** Statements that read or write the rows a stream shows (the credential check is not one of them). */
const onRows = (sql: string) => /"(Batch|BatchItem|Transition)"/.test(sql);

/** A connection set up (its credential checked, one subscription open), so that only what follows is counted. */
async function connected(apiKey: string, transitionId: string) {
  const client = wsClient(app.url + '/graphql', apiKey);
  const warm = subscribe(client, TransitionUpdated, { id: encodeId('Transition', transitionId) }, (d) => d.transitionUpdated);
  await warm.first;
  return { client, warm };
}

/** A transition of a new account made from two uploaded frames. */
async function uploadedFrames(prompt: string) {
  const account = await createTestAccount(app.segue);
  const image = async (color: string) => (await uploadImage(app.graphqlUrl, account.apiKey, await makeImage({ width: 640, height: 360, color }))).data!.uploadImage.id;
  const [front, tail] = [await image('#aa3300'), await image('#0033aa')];
  const created = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: [{ frontImageId: front, tailImageId: tail, prompt }] } });
  expect(created.errors).toBeUndefined();
  return { account, id: created.data!.createTransitions.transitions[0]!.id, front, tail };
}

/**
 * Two viewers of one transition (one connection each) get its snapshot (checked by `first`),
 * then one change: what each received, the change's version, and the statements sent for it.
 */
async function oneEventToTwoViewers<T extends { version: number }>(
  account: { apiKey: string },
  document: TypedDocumentNode<{ transitionUpdated: T }, { id: string }>,
  id: string,
  first: (snapshot: T) => unknown,
) {
  const clients = [wsClient(app.url + '/graphql', account.apiKey), wsClient(app.url + '/graphql', account.apiKey)];
  try {
    const subscribed = clients.map((client) => subscribe(client, document, { id }, (d) => d.transitionUpdated));
    for (const snapshot of await Promise.all(subscribed.map((v) => v.first))) await first(snapshot);
    const [row] = await app.segue.sql.query<Transition>(`UPDATE "Transition" SET "version" = "version" + 1 WHERE "id" = $1::uuid RETURNING *`, [idOf('Transition', id)]);
    const sent = await statementsDuring(async () => {
      await app.segue.events.transitionsChanged([row!]);
      await until(() => subscribed.every((v) => v.events.length >= 2), { what: 'the event, at both viewers' });
    });
    for (const v of subscribed) v.stop();
    return { viewers: subscribed.map((v) => v.events), version: row!.version, sent };
  } finally {
    await Promise.all(clients.map((c) => c.dispose()));
  }
}

describe('what a subscription reads', () => {
  it('a batch stream starts from one statement: every transition in its order, then its changes', async () => {
    const { account, batch, transitions } = await batchOf(5);
    const { client, warm } = await connected(account.apiKey, transitions[0]!.id);
    try {
      let stream!: ReturnType<typeof subscribe<unknown, unknown, { id: string; status: string; version: number }>>;
      const sent = await statementsDuring(async () => {
        stream = subscribe(client, TransitionUpdated, { batchId: encodeId('Batch', batch.id) }, (d) => d.transitionUpdated);
        await until(() => stream.events.length >= 5, { what: 'the snapshot' });
      });
      expect(sent.filter(onRows)).toHaveLength(1);
      expect(stream.events.map((e) => e.id)).toEqual(transitions.map((t) => encodeId('Transition', t.id)));
      expect(stream.events.every((e) => e.status === 'QUEUED')).toBe(true);

      await cancelBatch(noQueue(), account.id, batch.id);
      // Each transition's change, then the stream ends with the batch.
      await stream.done;
      expect(stream.errors).toEqual([]);
      expect(stream.events.slice(5).map((e) => e.status)).toEqual(Array(5).fill('CANCELED'));
      warm.stop();
    } finally {
      await client.dispose();
    }
  });

  it('a batch that has already ended: its rows as they ended, then the stream completes', async () => {
    const { account, batch, transitions } = await batchOf(3);
    await cancelBatch(noQueue(), account.id, batch.id);
    const client = wsClient(app.url + '/graphql', account.apiKey);
    try {
      const stream = subscribe(client, TransitionUpdated, { batchId: encodeId('Batch', batch.id) }, (d) => d.transitionUpdated);
      await stream.done;
      expect(stream.errors).toEqual([]);
      expect(stream.events.map((e) => [e.id, e.status])).toEqual(transitions.map((t) => [encodeId('Transition', t.id), 'CANCELED']));
    } finally {
      await client.dispose();
    }
  });

  it('batchProgress starts from one statement: the batch with its counts, of one moment; then each change, and its end', async () => {
    const { account, batch, transitions } = await batchOf(3);
    const { client, warm } = await connected(account.apiKey, transitions[0]!.id);
    try {
      let progress!: ReturnType<typeof subscribe<unknown, unknown, { status: string; total: number; queued: number; canceled: number; completedAt: unknown }>>;
      const sent = await statementsDuring(async () => {
        progress = subscribe(client, BatchProgress, { id: encodeId('Batch', batch.id) }, (d) => d.batchProgress);
        await progress.first;
      });
      expect(sent.filter(onRows)).toHaveLength(1);
      expect(progress.events[0]).toMatchObject({ status: 'QUEUED', total: 3, queued: 3, canceled: 0, completedAt: null });
      await cancelBatch(noQueue(), account.id, batch.id);
      await progress.done;
      expect(progress.errors).toEqual([]);
      expect(progress.events.at(-1)).toMatchObject({ status: 'CANCELED', total: 3, queued: 0, canceled: 3, completedAt: expect.any(String) });
      warm.stop();
    } finally {
      await client.dispose();
    }
  });

  it('when a batch ends, its streams in this process read it again in one statement, not one each', async () => {
    const { account, batch } = await batchOf(3);
    const streams = await Promise.all([1, 2, 3, 4, 5].map(() => transitionUpdates(app.segue, account.id, { batchId: batch.id })));
    try {
      for (const stream of streams) for (let i = 0; i < 3; i++) expect((await stream.next()).value).toMatchObject({ status: 'QUEUED' });
      const statusesUntilEnd = async (stream: AsyncIterator<Transition>) => {
        const statuses: string[] = [];
        for (let next = await stream.next(); !next.done; next = await stream.next()) statuses.push(next.value.status);
        return statuses;
      };
      let seen: string[][] = [];
      const sent = await statementsDuring(async () => {
        await cancelBatch(noQueue(), account.id, batch.id);
        seen = await Promise.all(streams.map(statusesUntilEnd));
      });
      expect(seen).toEqual(Array(5).fill(['CANCELED', 'CANCELED', 'CANCELED']));
      // The end reaches the five streams in one turn: they share one read of the batch.
      expect(sent.filter((s) => s.includes('AS "batchCompletedAt"'))).toHaveLength(1);
    } finally {
      await Promise.all(streams.map((stream) => stream.return?.()));
    }
  });

  it('a transition stream starts from one statement', async () => {
    const { account, transitions } = await batchOf(2);
    const { client, warm } = await connected(account.apiKey, transitions[1]!.id);
    try {
      let stream!: ReturnType<typeof subscribe<unknown, unknown, { id: string; status: string }>>;
      const sent = await statementsDuring(async () => {
        stream = subscribe(client, TransitionUpdated, { id: encodeId('Transition', transitions[0]!.id) }, (d) => d.transitionUpdated);
        await stream.first;
      });
      expect(sent.filter(onRows)).toHaveLength(1);
      expect(stream.events[0]).toMatchObject({ id: encodeId('Transition', transitions[0]!.id), status: 'QUEUED' });
      warm.stop();
      stream.stop();
    } finally {
      await client.dispose();
    }
  });

  it("another account's batch, transition or combined video is NOT_FOUND, and nothing stays subscribed at Redis", async () => {
    const theirs = await batchOf(2);
    const combined = await app.segue.db.generatedTransition.create({ data: { accountId: theirs.account.id } });
    // An API of its own: what its subscriber connection holds at Redis is this test's alone.
    const own = await startTestApp({ QUEUE_PREFIX: `${prefix}own` });
    const mine = await createTestAccount(own.segue);
    const target = own.segue.config.redis;
    const admin = new Redis(target.mode === 'single' ? target.url : 'redis://127.0.0.1:6379');
    const client = wsClient(own.url + '/graphql', mine.apiKey);
    try {
      const held = async () => {
        const port = (own.segue.pubsub.getSubscriber() as unknown as { stream: { localPort: number } }).stream.localPort;
        const line = String(await admin.call('CLIENT', 'LIST')).split('\n').find((l) => l.includes(`:${port} `))!;
        return JSON.stringify({ channels: Number(/ sub=(\d+)/.exec(line)![1]), patterns: Number(/ psub=(\d+)/.exec(line)![1]) });
      };
      // The connection set up (its credential checked) by a query: what the API holds for good.
      const viewer = subscribe(client, parse('{ viewer { id } }') as TypedDocumentNode<{ viewer: { id: string } }, Record<string, never>>, {}, (d) => d.viewer);
      await viewer.done;
      const before = await held();
      const refused = [
        subscribe(client, TransitionUpdated, { batchId: encodeId('Batch', theirs.batch.id) }, (d) => d.transitionUpdated),
        subscribe(client, TransitionUpdated, { id: encodeId('Transition', theirs.transitions[0]!.id) }, (d) => d.transitionUpdated),
        subscribe(client, BatchProgress, { id: encodeId('Batch', theirs.batch.id) }, (d) => d.batchProgress),
        subscribe(client, GeneratedTransitionUpdated, { id: encodeId('GeneratedTransition', combined.id) }, (d) => d.generatedTransitionUpdated),
      ];
      for (const stream of refused) {
        await stream.done;
        expect(codes({ errors: stream.errors })).toEqual(['NOT_FOUND']);
        expect(stream.events).toEqual([]);
      }
      await until(async () => (await held()) === before, { what: 'the topics let go' });
    } finally {
      await client.dispose();
      admin.disconnect();
      await own.close();
      await dropQueueKeys(own.segue.config.redis, `${prefix}own`);
    }
  });

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

  it("the console's fields: uploaded frames are signed URLs in the snapshot and in every event, read once per process, not per event", async () => {
    const { account, id } = await uploadedFrames('uploaded frames');
    type Frames = { id: string; version: number; frontImageUrl: string; tailImageUrl: string };
    const Console: TypedDocumentNode<{ transitionUpdated: Frames }, { id: string }> = parse(
      'subscription ($id: ID) { transitionUpdated(id: $id) { id version frontImageUrl tailImageUrl estimatedCost error { code } } }',
    );
    const { viewers, version, sent } = await oneEventToTwoViewers(account, Console, id, async (first) => {
      for (const url of [first.frontImageUrl, first.tailImageUrl]) {
        // Signed URLs of this server (its public URL is not known to a test on port 0: the path is).
        const { pathname, search } = new URL(url);
        expect(pathname).toMatch(/^\/media\/private\/images\//);
        expect((await fetch(app.url + pathname + search)).headers.get('content-type')).toMatch(/^image\//);
      }
    });
    for (const events of viewers) {
      expect(events[1]).toMatchObject({ version, frontImageUrl: expect.stringContaining('/media/'), tailImageUrl: expect.stringContaining('/media/') });
    }
    expect(sent.filter((sql) => /"(Transition|Image)"/.test(sql) && !/"Batch/.test(sql))).toEqual([]);
  });

  it('frontImage and tailImage in a subscription: the same image in the snapshot and in every event, read once per process, not per event', async () => {
    const { account, id, front, tail } = await uploadedFrames('image relations');
    type Frame = { id: string; url: string; width: number; height: number; contentType: string; bytes: number; createdAt: string };
    type Frames = { id: string; version: number; frontImage: Frame | null; tailImage: Frame | null };
    const Relations: TypedDocumentNode<{ transitionUpdated: Frames }, { id: string }> = parse(
      'subscription ($id: ID) { transitionUpdated(id: $id) { id version frontImage { id url width height contentType bytes createdAt } tailImage { id url width } } }',
    );
    const { viewers, version, sent } = await oneEventToTwoViewers(account, Relations, id, (first) => {
      expect(first.frontImage).toMatchObject({ id: front, width: 640, height: 360, contentType: 'image/png', url: expect.stringContaining('/media/private/images/') });
      expect(first.frontImage!.bytes).toBeGreaterThan(0);
      expect(first.tailImage).toMatchObject({ id: tail, width: 640 });
    });
    // The event shows the very same images as the snapshot (a stored image never changes), and
    // as a query of the image itself, which reads it through Prisma.
    for (const events of viewers) expect(events[1]).toEqual({ ...events[0], version });
    const Queried: TypedDocumentNode<{ image: Frame }, { id: string }> = parse('query ($id: ID!) { image(id: $id) { id url width height contentType bytes createdAt } }');
    const queried = await gql(app.graphqlUrl, account.apiKey, Queried, { id: front });
    expect(viewers[0]![1]!.frontImage).toEqual(queried.data!.image);
    expect(sent.filter((sql) => /"(Transition|Image)"/.test(sql) && !/"Batch/.test(sql))).toEqual([]);
  });

  it("a page of transitions reads its uploaded frames' keys in one statement, and a second page none", async () => {
    const account = await createTestAccount(app.segue);
    const image = async (color: string) => (await uploadImage(app.graphqlUrl, account.apiKey, await makeImage({ width: 640, height: 360, color }))).data!.uploadImage.id;
    const colors = ['#110000', '#220000', '#330000', '#440000', '#550000', '#660000'];
    const ids: string[] = [];
    for (const color of colors) ids.push(await image(color));
    // Made without asking for the frames' URLs, so that no key is known yet.
    const Create: TypedDocumentNode<{ createTransitions: { batch: { id: string } } }, { input: unknown }> = parse(
      'mutation ($input: CreateTransitionsInput!) { createTransitions(input: $input) { batch { id } } }',
    );
    const created = await gql(app.graphqlUrl, account.apiKey, Create, {
      input: { generate: true, transitions: [0, 2, 4].map((i) => ({ frontImageId: ids[i], tailImageId: ids[i + 1], prompt: `frames ${i}` })) },
    });
    expect(created.errors).toBeUndefined();
    const Page: TypedDocumentNode<{ batch: { transitions: { edges: Array<{ node: { frontImageUrl: string; tailImageUrl: string } }> } } }, { id: string }> =
      parse('query ($id: ID!) { batch(id: $id) { transitions(first: 10) { edges { node { frontImageUrl tailImageUrl } } } } }');
    const id = created.data!.createTransitions.batch!.id;
    const keyReads = (sent: string[]) => sent.filter((sql) => sql.includes('"key"') && sql.includes('"Image"'));
    let page!: Awaited<ReturnType<typeof gql<{ batch: { transitions: { edges: Array<{ node: { frontImageUrl: string; tailImageUrl: string } }> } } }, { id: string }>>>;
    const first = await statementsDuring(async () => (page = await gql(app.graphqlUrl, account.apiKey, Page, { id })));
    const urls = page.data!.batch.transitions.edges.flatMap((e) => [e.node.frontImageUrl, e.node.tailImageUrl]);
    expect(urls.map((url) => new URL(url).pathname.split('/').pop()!.split('.')[0])).toEqual(ids.map((global) => idOf('Image', global)));
    expect(keyReads(first)).toHaveLength(1);
    const second = await statementsDuring(() => gql(app.graphqlUrl, account.apiKey, Page, { id }));
    expect(keyReads(second)).toEqual([]);
  });
});

/**
 * An event is executed once for every WebSocket subscriber of a process that would get the same
 * result (same query, variables and viewer), and never shared with one that would not: a browser
 * token scoped to one transition must not see the batch that an API key's viewer sees.
 */
type Shown = { id: string; version: number; status: string; batch: { id: string } | null };
const Updated: TypedDocumentNode<{ transitionUpdated: Shown }, { id: string }> = parse(
  'subscription ($id: ID) { transitionUpdated(id: $id) { id version status batch { id } } }',
);

/** segue_subscription_results_total by execution, from the API's /metrics. */
async function results() {
  const text = await metricsOf(app.url);
  const of = (execution: string) => sample(text, 'segue_subscription_results_total', `execution="${execution}"`);
  return { executed: of('executed'), shared: of('shared') };
}

/** A new account's batch of `count` (not queued), its first transition, and a browser token scoped to that transition. */
async function viewedTransition(count: number) {
  const account = await createTestAccount(app.segue);
  const { batch, transitions } = await createAndGenerate(noQueue(), account.id, { transitions: transitionInputs(count) });
  const transition = transitions[0]!;
  const id = encodeId('Transition', transition.id);
  const minted = await gql(app.graphqlUrl, account.apiKey, CreateAccessToken, { input: { transitionId: id } });
  expect(minted.errors).toBeUndefined();
  return { account, batch, transition, id, token: minted.data!.createAccessToken.token };
}

describe('results shared between subscribers', () => {
  it('two API-key viewers of a transition share one execution of each event; browser tokens scoped to it and to its batch each get their own', async () => {
    const { account, batch, transition, id, token } = await viewedTransition(2);
    const ofBatch = await gql(app.graphqlUrl, account.apiKey, CreateAccessToken, { input: { batchId: encodeId('Batch', batch!.id) } });
    expect(ofBatch.errors).toBeUndefined();

    const credentials = [account.apiKey, account.apiKey, token, ofBatch.data!.createAccessToken.token];
    const clients = credentials.map((credential) => wsClient(app.graphqlUrl, credential));
    try {
      const [keyA, keyB, scoped, batchScoped] = clients.map((client) => subscribe(client, Updated, { id }, (d) => d.transitionUpdated));
      await Promise.all([keyA!.first, keyB!.first, scoped!.first, batchScoped!.first]);
      expect(keyA!.events[0]!.batch).toEqual({ id: encodeId('Batch', batch!.id) });
      expect(scoped!.events[0]!.batch).toBeNull();
      expect(batchScoped!.events[0]!.batch).toEqual({ id: encodeId('Batch', batch!.id) });

      const before = await results();
      const changed = await changeTransition(app.segue, transition, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date() }, { from: ['QUEUED'] });
      expect(changed).not.toBeNull();
      await until(() => [keyA, keyB, scoped, batchScoped].every((s) => s!.events.length >= 2), { what: 'the change, at all four' });
      const after = await results();

      for (const viewer of [keyA, keyB, batchScoped]) expect(viewer!.events[1]).toEqual({ id, version: changed!.version, status: 'SUBMITTED', batch: { id: encodeId('Batch', batch!.id) } });
      expect(scoped!.events[1]).toEqual({ id, version: changed!.version, status: 'SUBMITTED', batch: null });
      // The two key viewers: one execution and one shared result; each token: one of its own
      // (the batch's token sees what the keys see, but it is another viewer: not shared).
      expect({ executed: after.executed - before.executed, shared: after.shared - before.shared }).toEqual({ executed: 3, shared: 1 });
      for (const s of [keyA, keyB, scoped, batchScoped]) s!.stop();
    } finally {
      await Promise.all(clients.map((c) => c.dispose()));
    }
  });

  it('viewers over SSE share too, with each other and with a WebSocket viewer; a browser token over SSE gets its own', async () => {
    const { account, batch, transition, id, token } = await viewedTransition(1);
    const ws = wsClient(app.graphqlUrl, account.apiKey);
    const sse = [sseClient(app.graphqlUrl, account.apiKey), sseClient(app.graphqlUrl, account.apiKey), sseClient(app.graphqlUrl, token)];
    try {
      const viewers = [ws, ...sse].map((client) => subscribe(client, Updated, { id }, (d) => d.transitionUpdated));
      await Promise.all(viewers.map((v) => v.first));
      const before = await results();
      const changed = await changeTransition(app.segue, transition, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date() }, { from: ['QUEUED'] });
      await until(() => viewers.every((v) => v.events.length >= 2), { what: 'the change, at all four' });
      const after = await results();
      const seen = { id, version: changed!.version, status: 'SUBMITTED' };
      for (const v of viewers.slice(0, 3)) expect(v.events[1]).toEqual({ ...seen, batch: { id: encodeId('Batch', batch!.id) } });
      expect(viewers[3]!.events[1]).toEqual({ ...seen, batch: null });
      // The three key viewers (one over WebSocket, two over SSE): one execution, two shared; the token: its own.
      expect({ executed: after.executed - before.executed, shared: after.shared - before.shared }).toEqual({ executed: 2, shared: 2 });
      for (const v of viewers) v.stop();
    } finally {
      await ws.dispose();
      for (const c of sse) c.dispose();
    }
  });

  it('two viewers of a batch share the execution of each batchProgress event', async () => {
    const account = await createTestAccount(app.segue);
    const { batch, transitions } = await createAndGenerate(noQueue(), account.id, { transitions: transitionInputs(3) });
    await app.segue.events.flush();
    const Progress: TypedDocumentNode<{ batchProgress: { id: string; total: number; queued: number; running: number } }, { id: string }> = parse(
      'subscription ($id: ID!) { batchProgress(id: $id) { id total queued running } }',
    );
    const clients = [wsClient(app.graphqlUrl, account.apiKey), wsClient(app.graphqlUrl, account.apiKey)];
    try {
      const viewers = clients.map((client) => subscribe(client, Progress, { id: encodeId('Batch', batch!.id) }, (d) => d.batchProgress));
      await Promise.all(viewers.map((v) => v.first));
      const before = await results();
      await changeTransition(app.segue, transitions[0]!, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date() }, { from: ['QUEUED'] });
      await app.segue.events.flush();
      await until(() => viewers.every((v) => v.events.some((e) => e.running === 1)), { what: 'the new counts, at both' });
      const after = await results();
      for (const v of viewers) expect(v.events.at(-1)).toEqual({ id: encodeId('Batch', batch!.id), total: 3, queued: 2, running: 1 });
      expect(after.shared - before.shared).toBe(after.executed - before.executed);
      expect(after.shared - before.shared).toBeGreaterThan(0);
      for (const v of viewers) v.stop();
    } finally {
      await Promise.all(clients.map((c) => c.dispose()));
    }
  });

  it('a viewer asking for other fields of the same transition, and another account\'s viewer, each execute their own', async () => {
    const accounts = [await createTestAccount(app.segue), await createTestAccount(app.segue)];
    const rows = await Promise.all(accounts.map(async (a) => (await createAndGenerate(noQueue(), a.id, { transitions: transitionInputs(1) })).transitions[0]!));
    const Fewer: TypedDocumentNode<{ transitionUpdated: { id: string; version: number } }, { id: string }> = parse(
      'subscription ($id: ID) { transitionUpdated(id: $id) { id version } }',
    );
    const clients = [wsClient(app.graphqlUrl, accounts[0]!.apiKey), wsClient(app.graphqlUrl, accounts[0]!.apiKey), wsClient(app.graphqlUrl, accounts[1]!.apiKey)];
    try {
      const id = (n: number) => encodeId('Transition', rows[n]!.id);
      const subs = [
        subscribe(clients[0]!, Updated, { id: id(0) }, (d) => d.transitionUpdated),
        subscribe(clients[1]!, Fewer, { id: id(0) }, (d) => d.transitionUpdated),
        subscribe(clients[2]!, Updated, { id: id(1) }, (d) => d.transitionUpdated),
      ];
      await Promise.all(subs.map((s) => s.first));
      const before = await results();
      await Promise.all(rows.map((row) => changeTransition(app.segue, row, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date() }, { from: ['QUEUED'] })));
      await until(() => subs.every((s) => s.events.length >= 2), { what: 'each change' });
      const after = await results();
      expect(subs[1]!.events[1]).toEqual({ id: id(0), version: rows[0]!.version + 1 });
      expect(subs[2]!.events[1]).toMatchObject({ id: id(1), status: 'SUBMITTED' });
      expect({ executed: after.executed - before.executed, shared: after.shared - before.shared }).toEqual({ executed: 3, shared: 0 });
      for (const s of subs) s.stop();
    } finally {
      await Promise.all(clients.map((c) => c.dispose()));
    }
  });
});
