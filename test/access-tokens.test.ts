import { decodeJwt, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessTokens } from '../src/auth/access-tokens.ts';
import { encodeId, idOf } from '../src/graphql/ids.ts';
import { codes, createTestAccount, gql, startTestApp, type TestAccount } from './helpers/app.ts';
import { CreateAccessToken, CreateApiKey, RevokeApiKey, TransitionWithBatch } from './helpers/credential-operations.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import {
  BatchProgress,
  CancelBatch,
  CreateTransitions,
  GenerateBatch,
  GetBatch,
  GetNode,
  GetTransition,
  ListTransitions,
  TransitionUpdated,
  Viewer,
} from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { rootFieldOperations } from './helpers/root-fields.ts';
import { sseClient, subscribe, wsClient, type Subscription } from './helpers/subscribe.ts';
import { until } from './helpers/wait.ts';

let p: Pipeline;
beforeAll(async () => {
  // No worker until a test has its subscribers in place.
  p = await startPipeline({ emulator: { latencyMs: 300 } });
});
afterAll(() => p?.close());

const url = () => p.app.graphqlUrl;

async function mint(apiKey: string, input: { batchId?: string; transitionId?: string; ttlSeconds?: number }) {
  const res = await gql(url(), apiKey, CreateAccessToken, { input });
  expect(res.errors).toBeUndefined();
  return res.data!.createAccessToken;
}

async function createBatch(account: TestAccount, n: number, generate = true) {
  const res = await gql(url(), account.apiKey, CreateTransitions, { input: { transitions: transitionInputs(n), generate } });
  const { transitions, batch } = res.data!.createTransitions;
  return { batchId: batch?.id ?? null, transitionIds: transitions.map((t) => t.id) };
}

/** A raw GraphQL call, for root fields outside the typed documents. */
async function raw(credential: string, query: string) {
  const res = await fetch(url(), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${credential}` },
    body: JSON.stringify({ query }),
  });
  return (await res.json()) as { data?: unknown; errors?: Array<{ message: string; extensions?: { code?: string } }> };
}

/** Failures of a subscription that the server refuses at once. */
async function refusedSubscription<T>(sub: Subscription<T>) {
  await sub.done;
  return sub.errors.map((e) => e.extensions?.code);
}

describe('browser tokens (createAccessToken)', () => {
  it('a batch token reads its batch, transitions, node and transitions(batchId:), and follows both subscriptions over WebSocket and SSE to the end', { timeout: 60_000 }, async () => {
    const account = await createTestAccount(p.app.segue);
    const { batchId, transitionIds } = await createBatch(account, 3);
    const minted = await mint(account.apiKey, { batchId: batchId! });
    const lifetime = Date.parse(minted.expiresAt) - Date.now();
    expect(lifetime).toBeGreaterThan(895_000);
    expect(lifetime).toBeLessThanOrEqual(900_000);
    const token = minted.token;

    const batch = await gql(url(), token, GetBatch, { id: batchId! });
    expect(batch.data!.batch).toMatchObject({ id: batchId, total: 3 });
    expect(batch.data!.batch.transitions.edges.map((e) => e.node.id)).toEqual(transitionIds);
    expect((await gql(url(), token, GetTransition, { id: transitionIds[1]! })).data!.transition.id).toBe(transitionIds[1]);
    expect((await gql(url(), token, TransitionWithBatch, { id: transitionIds[0]! })).data!.transition.batch).toEqual({ id: batchId });
    expect((await gql(url(), token, GetNode, { id: batchId! })).data!.node).toEqual({ id: batchId, __typename: 'Batch' });
    expect((await gql(url(), token, GetNode, { id: transitionIds[2]! })).data!.node).toEqual({ id: transitionIds[2], __typename: 'Transition' });
    const listed = await gql(url(), token, ListTransitions, { first: 10, batchId: batchId! });
    expect(listed.data!.transitions.edges.map((e) => e.node.id).sort()).toEqual([...transitionIds].sort());

    const ws = wsClient(url(), token);
    const sse = sseClient(url(), token);
    const streams = [
      subscribe(ws, TransitionUpdated, { batchId: batchId! }, (d) => d.transitionUpdated),
      subscribe(sse, TransitionUpdated, { batchId: batchId! }, (d) => d.transitionUpdated),
    ];
    const progress = [
      subscribe(ws, BatchProgress, { id: batchId! }, (d) => d.batchProgress),
      subscribe(sse, BatchProgress, { id: batchId! }, (d) => d.batchProgress),
    ];
    await until(() => streams.every((s) => s.events.length >= 3) && progress.every((s) => s.events.length >= 1), { what: 'snapshots' });
    await p.startInlineWorker();
    await Promise.all([...streams, ...progress].map((s) => s.done));
    for (const stream of streams) {
      expect(stream.errors).toEqual([]);
      const completed = new Set(stream.events.filter((e) => e.status === 'COMPLETED').map((e) => e.id));
      expect([...completed].sort()).toEqual([...transitionIds].sort());
    }
    for (const stream of progress) {
      expect(stream.errors).toEqual([]);
      expect(stream.events.at(-1)).toMatchObject({ status: 'COMPLETED', completed: 3 });
    }
    await ws.dispose();
  });

  it("a batch token gets NOT_FOUND for other batches and other accounts' ids, and FORBIDDEN for every mutation and every other field", { timeout: 30_000 }, async () => {
    const [account, stranger] = [await createTestAccount(p.app.segue), await createTestAccount(p.app.segue)];
    const mine = await createBatch(account, 2, false);
    const [first, second] = mine.transitionIds as [string, string];
    // The token's batch: both transitions, canceled; then the first one generated again in a later batch.
    const b1 = (await gql(url(), account.apiKey, GenerateBatch, { input: { transitionIds: [first, second] } })).data!.generateBatch.batch.id;
    await gql(url(), account.apiKey, CancelBatch, { id: b1 });
    const b2 = (await gql(url(), account.apiKey, GenerateBatch, { input: { transitionIds: [first] } })).data!.generateBatch.batch.id;
    const outside = (await createBatch(account, 1, false)).transitionIds[0]!;
    const theirs = await createBatch(stranger, 1);
    const token = (await mint(account.apiKey, { batchId: b1 })).token;

    // Inside: b1 and both of its transitions; the first one's current batch (b2) stays hidden.
    expect((await gql(url(), token, GetBatch, { id: b1 })).data!.batch.id).toBe(b1);
    expect((await gql(url(), token, TransitionWithBatch, { id: first })).data!.transition).toMatchObject({ id: first, batch: null });
    expect((await gql(url(), token, TransitionWithBatch, { id: second })).data!.transition.batch).toEqual({ id: b1 });

    // Ids outside the scope look exactly like missing ones.
    expect(codes(await gql(url(), token, GetBatch, { id: b2 }))).toEqual(['NOT_FOUND']);
    expect(codes(await gql(url(), token, GetBatch, { id: theirs.batchId! }))).toEqual(['NOT_FOUND']);
    expect(codes(await gql(url(), token, GetTransition, { id: outside }))).toEqual(['NOT_FOUND']);
    expect(codes(await gql(url(), token, GetTransition, { id: theirs.transitionIds[0]! }))).toEqual(['NOT_FOUND']);
    expect(codes(await gql(url(), token, ListTransitions, { first: 5, batchId: b2 }))).toEqual(['NOT_FOUND']);
    for (const id of [b2, outside, theirs.batchId!, encodeId('Account', account.id)]) {
      const node = await gql(url(), token, GetNode, { id });
      expect(node.errors).toBeUndefined();
      expect(node.data!.node).toBeNull();
    }
    const sse = sseClient(url(), token);
    expect(await refusedSubscription(subscribe(sse, TransitionUpdated, { batchId: b2 }, (d) => d.transitionUpdated))).toEqual(['NOT_FOUND']);
    expect(await refusedSubscription(subscribe(sse, TransitionUpdated, { id: outside }, (d) => d.transitionUpdated))).toEqual(['NOT_FOUND']);
    expect(await refusedSubscription(subscribe(sse, BatchProgress, { id: theirs.batchId! }, (d) => d.batchProgress))).toEqual(['NOT_FOUND']);

    // The account as a whole is not the token's: its lists and its account-wide stream are FORBIDDEN.
    expect(codes(await gql(url(), token, ListTransitions, { first: 5 }))).toEqual(['FORBIDDEN']);
    expect(await refusedSubscription(subscribe(sse, TransitionUpdated, {}, (d) => d.transitionUpdated))).toEqual(['FORBIDDEN']);
    const before = await p.app.segue.db.transition.count({ where: { accountId: account.id } });
    const allowed = new Set(['Query.batch', 'Query.transition', 'Query.node', 'Query.transitions']);
    for (const [name, query] of rootFieldOperations(['Query', 'Mutation'])) {
      if (allowed.has(name)) continue;
      const body = await raw(token, query);
      expect(body.errors?.map((e) => e.extensions?.code), name).toEqual(['FORBIDDEN']);
    }
    expect(codes(await gql(url(), token, Viewer))).toEqual(['FORBIDDEN']);
    expect(await p.app.segue.db.transition.count({ where: { accountId: account.id } })).toBe(before);
  });

  it("a transition token reads that transition only: its batch and the batch's other transitions are NOT_FOUND", async () => {
    const account = await createTestAccount(p.app.segue);
    const { batchId, transitionIds } = await createBatch(account, 2);
    const token = (await mint(account.apiKey, { transitionId: transitionIds[0]! })).token;
    expect((await gql(url(), token, TransitionWithBatch, { id: transitionIds[0]! })).data!.transition).toMatchObject({ id: transitionIds[0], batch: null });
    expect(codes(await gql(url(), token, GetTransition, { id: transitionIds[1]! }))).toEqual(['NOT_FOUND']);
    expect(codes(await gql(url(), token, GetBatch, { id: batchId! }))).toEqual(['NOT_FOUND']);
    expect(codes(await gql(url(), token, ListTransitions, { first: 5, batchId: batchId! }))).toEqual(['NOT_FOUND']);
    const sub = subscribe(sseClient(url(), token), TransitionUpdated, { id: transitionIds[0]! }, (d) => d.transitionUpdated);
    expect((await sub.first).id).toBe(transitionIds[0]);
    sub.stop();
  });

  it('createAccessToken takes exactly one id, a ttl of 60 s to 24 h, and only the caller’s own batch; a token cannot mint one', async () => {
    const [account, stranger] = [await createTestAccount(p.app.segue), await createTestAccount(p.app.segue)];
    const { batchId, transitionIds } = await createBatch(account, 1);
    const theirs = await createBatch(stranger, 1);
    const call = (input: Record<string, unknown>, credential = account.apiKey) => gql(url(), credential, CreateAccessToken, { input });

    const both = await call({ batchId, transitionId: transitionIds[0] });
    expect(codes(both)).toEqual(['BAD_USER_INPUT']);
    expect(both.errors![0]!.extensions!.fields).toEqual(['batchId', 'transitionId']);
    expect(codes(await call({}))).toEqual(['BAD_USER_INPUT']);
    for (const ttlSeconds of [59, 86_401]) {
      const res = await call({ batchId, ttlSeconds });
      expect(codes(res)).toEqual(['BAD_USER_INPUT']);
      expect(res.errors![0]!.extensions!.fields).toEqual(['ttlSeconds']);
    }
    const day = await mint(account.apiKey, { batchId: batchId!, ttlSeconds: 86_400 });
    expect(Date.parse(day.expiresAt) - Date.now()).toBeGreaterThan(86_395_000);
    expect(codes(await call({ batchId: theirs.batchId }))).toEqual(['NOT_FOUND']);
    expect(codes(await call({ transitionId: theirs.transitionIds[0] }))).toEqual(['NOT_FOUND']);
    expect(codes(await call({ batchId }, day.token))).toEqual(['FORBIDDEN']);

    // A key that expires sooner caps the token's life.
    const shortKey = (await gql(url(), account.apiKey, CreateApiKey, { input: { name: 'short', expiresInDays: 1 } })).data!.createApiKey;
    const capped = await mint(shortKey.secret, { batchId: batchId!, ttlSeconds: 86_400 });
    expect(Date.parse(capped.expiresAt)).toBeLessThanOrEqual(Date.parse(shortKey.apiKey.expiresAt!));
  });

  it('is a signed JWT that carries no secret; a forged or foreign-signed token is UNAUTHENTICATED', async () => {
    const account = await createTestAccount(p.app.segue);
    const { batchId } = await createBatch(account, 1);
    const { token } = await mint(account.apiKey, { batchId: batchId! });
    const claims = decodeJwt(token);
    expect(Object.keys(claims).sort()).toEqual(['aud', 'exp', 'iat', 'iss', 'jti', 'key', 'scope', 'sub']);
    expect(claims.scope).toMatch(/^read:batch:[0-9a-f-]{36}$/);
    expect(token).not.toContain('sg_');
    const key = await p.app.segue.db.apiKey.findFirstOrThrow({ where: { accountId: account.id } });
    expect(JSON.stringify(claims)).not.toContain(key.hash);

    // Widened to the whole account, or signed with another secret: refused.
    const [header, , signature] = token.split('.');
    const widened = Buffer.from(JSON.stringify({ ...claims, scope: `read:batch:${claims.sub}` })).toString('base64url');
    expect(codes(await gql(url(), `${header}.${widened}.${signature}`, GetBatch, { id: batchId! }))).toEqual(['UNAUTHENTICATED']);
    const foreign = await new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode('x'.repeat(32)));
    expect(codes(await gql(url(), foreign, GetBatch, { id: batchId! }))).toEqual(['UNAUTHENTICATED']);
  });

  it('after expiresAt a token is UNAUTHENTICATED, and the streams opened with it end at expiry', { timeout: 20_000 }, async () => {
    const account = await createTestAccount(p.app.segue);
    // A draft transition: its stream stays open until something ends it.
    const id = (await createBatch(account, 1, false)).transitionIds[0]!;
    const key = await p.app.segue.db.apiKey.findFirstOrThrow({ where: { accountId: account.id } });
    // The server's own signer, with a lifetime shorter than the mutation allows.
    const signer = accessTokens({ db: p.app.segue.db, secret: p.app.segue.config.auth.tokenSecret });
    // Time enough for both streams to open first on a loaded machine.
    const expiresAt = new Date(Date.now() + 5_000);
    const { token } = await signer.sign({ accountId: account.id, keyId: key.id, scope: { transitionId: idOf('Transition', id) }, expiresAt });

    let closed = { code: 0, at: 0 };
    const ws = wsClient(url(), token, { onClose: (code) => (closed = { code, at: Date.now() }) });
    const viaWs = subscribe(ws, TransitionUpdated, { id }, (d) => d.transitionUpdated);
    const viaSse = subscribe(sseClient(url(), token), TransitionUpdated, { id }, (d) => d.transitionUpdated);
    await Promise.all([viaWs.first, viaSse.first]);
    await viaSse.done;
    const sseEnded = Date.now();
    await until(() => closed.code !== 0, { timeoutMs: 3_000, what: 'the WebSocket to close' });
    expect(closed.code).toBe(4403);
    for (const at of [sseEnded, closed.at]) {
      expect(at).toBeGreaterThanOrEqual(expiresAt.getTime() - 1_000);
      expect(at - expiresAt.getTime()).toBeLessThan(1_500);
    }
    const after = await gql(url(), token, GetTransition, { id });
    expect(codes(after)).toEqual(['UNAUTHENTICATED']);
    expect(after.errors![0]!.message).toMatch(/expired/);
    await ws.dispose();
  });

  it('revoking the key that minted a token ends the token: HTTP refused, WebSocket closed 4403, SSE ended', { timeout: 20_000 }, async () => {
    const account = await createTestAccount(p.app.segue);
    const id = (await createBatch(account, 1, false)).transitionIds[0]!;
    const minter = (await gql(url(), account.apiKey, CreateApiKey, { input: { name: 'share links' } })).data!.createApiKey;
    const { token } = await mint(minter.secret, { transitionId: id });
    let closedWith = 0;
    const ws = wsClient(url(), token, { onClose: (code) => (closedWith = code) });
    const viaWs = subscribe(ws, TransitionUpdated, { id }, (d) => d.transitionUpdated);
    const viaSse = subscribe(sseClient(url(), token), TransitionUpdated, { id }, (d) => d.transitionUpdated);
    await Promise.all([viaWs.first, viaSse.first]);

    await gql(url(), account.apiKey, RevokeApiKey, { id: minter.apiKey.id });
    const refused = await gql(url(), token, GetTransition, { id });
    expect(codes(refused)).toEqual(['UNAUTHENTICATED']);
    expect(refused.errors![0]!.message).toMatch(/revoked/);
    await viaSse.done;
    await until(() => closedWith !== 0, { timeoutMs: 5_000, what: 'the WebSocket to close' });
    expect(closedWith).toBe(4403);
    // Tokens of the account's other keys are untouched.
    const other = await mint(account.apiKey, { transitionId: id });
    expect((await gql(url(), other.token, GetTransition, { id })).data!.transition.id).toBe(id);
    await ws.dispose();
  });
});

describe('TOKEN_SECRET', () => {
  it('in production without TOKEN_SECRET, browser tokens are off: createAccessToken is FORBIDDEN and tokens are refused', async () => {
    const app = await startTestApp({ NODE_ENV: 'production', TOKEN_SECRET: '', QUEUE_PREFIX: p.env.QUEUE_PREFIX });
    try {
      const account = await createTestAccount(app.segue);
      const { batchId } = await createBatch(account, 1);
      const res = await gql(app.graphqlUrl, account.apiKey, CreateAccessToken, { input: { batchId: batchId! } });
      expect(codes(res)).toEqual(['FORBIDDEN']);
      expect(res.errors![0]!.message).toMatch(/TOKEN_SECRET/);
      // A token from a server with tokens on means nothing here.
      const elsewhere = await mint(account.apiKey, { batchId: batchId! });
      expect(codes(await gql(app.graphqlUrl, elsewhere.token, GetBatch, { id: batchId! }))).toEqual(['UNAUTHENTICATED']);
    } finally {
      await app.close();
    }
  });

  it('is refused at start when shorter than 32 characters', async () => {
    await expect(startTestApp({ TOKEN_SECRET: 'short' })).rejects.toThrow(/TOKEN_SECRET="short" must be at least 32 characters/);
  });
});
