import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeId } from '../src/graphql/ids.ts';
import { codes, createTestAccount, gql, startTestApp, type TestAccount, type TestApp } from './helpers/app.ts';
import { startApiProcess, type ApiProcess } from './helpers/api-process.ts';
import { CreateApiKey, RevokeApiKey, ViewerKeys } from './helpers/credential-operations.ts';
import { transitionInput } from './helpers/fixtures.ts';
import { CreateTransitions, TransitionUpdated, Viewer } from './helpers/operations.ts';
import { run } from './helpers/process.ts';
import { sseClient, subscribe, wsClient } from './helpers/subscribe.ts';
import { until } from './helpers/wait.ts';

// Both API instances share a queue prefix, and so the channel revocation notices travel on.
const env = { QUEUE_PREFIX: `k${randomBytes(4).toString('hex')}` };
let app: TestApp;
let second: ApiProcess;

beforeAll(async () => {
  [app, second] = await Promise.all([startTestApp(env), startApiProcess(env)]);
}, 60_000);
afterAll(async () => {
  await second?.stop();
  await app?.close();
});

async function newKey(account: TestAccount, input: { name: string; expiresInDays?: number }) {
  const res = await gql(app.graphqlUrl, account.apiKey, CreateApiKey, { input });
  expect(res.errors).toBeUndefined();
  return res.data!.createApiKey;
}

/** A transition of the account to follow: its subscription answers with a snapshot once it is open. */
async function draftTransition(account: TestAccount) {
  const res = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: [transitionInput()] } });
  return res.data!.createTransitions.transitions[0]!.id;
}

/** A WebSocket and an SSE subscription opened with `secret` on `url`, both confirmed open. */
async function openStreams(url: string, secret: string, transitionId: string) {
  const closed: { code: number | null; at: number } = { code: null, at: 0 };
  const ws = wsClient(url, secret, {
    onClose: (code) => {
      closed.code ??= code;
      closed.at ||= Date.now();
    },
  });
  const viaWs = subscribe(ws, TransitionUpdated, { id: transitionId }, (d) => d.transitionUpdated);
  const viaSse = subscribe(sseClient(url, secret), TransitionUpdated, { id: transitionId }, (d) => d.transitionUpdated);
  await Promise.all([viaWs.first, viaSse.first]);
  let sseEndedAt = 0;
  void viaSse.done.then(() => (sseEndedAt = Date.now()));
  return { ws, viaWs, viaSse, closed, sseEndedAt: () => sseEndedAt };
}

describe('API keys as objects', () => {
  it('createApiKey shows the secret once; viewer.apiKeys lists every key by name and prefix, never a secret', async () => {
    const account = await createTestAccount(app.segue);
    const made = await newKey(account, { name: 'build server', expiresInDays: 30 });
    expect(made.secret).toMatch(/^sg_[A-Za-z0-9_-]{43}$/);
    expect(made.apiKey).toMatchObject({ name: 'build server', prefix: made.secret.slice(0, 11), lastUsedAt: null, revokedAt: null });
    const days = (Date.parse(made.apiKey.expiresAt!) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);

    const listed = await gql(app.graphqlUrl, account.apiKey, ViewerKeys);
    const keys = listed.data!.viewer.apiKeys;
    // Newest first: the new key, then the account's first key ("default").
    expect(keys.map((k) => k.name)).toEqual(['build server', 'default']);
    const text = JSON.stringify(listed);
    expect(text).not.toContain(made.secret);
    expect(text).not.toContain(account.apiKey);
    // Only a hash is stored.
    const rows = await app.segue.db.apiKey.findMany({ where: { accountId: account.id } });
    expect(JSON.stringify(rows)).not.toContain(made.secret.slice(11));
    // node() finds the key for its owner only.
    const other = await createTestAccount(app.segue);
    const mine = await fetchNode(account.apiKey, made.apiKey.id);
    const theirs = await fetchNode(other.apiKey, made.apiKey.id);
    expect(mine).toEqual({ id: made.apiKey.id, __typename: 'ApiKey' });
    expect(theirs).toBeNull();
  });

  it('a new key works at once; lastUsedAt is written on first use and then at most once a minute', async () => {
    const account = await createTestAccount(app.segue);
    const made = await newKey(account, { name: 'fresh' });
    const first = await gql(app.graphqlUrl, made.secret, Viewer);
    expect(first.data!.viewer.id).toBe(encodeId('Account', account.id));
    const keyId = (await app.segue.db.apiKey.findFirstOrThrow({ where: { accountId: account.id, name: 'fresh' } })).id;
    const used = await until(async () => (await app.segue.db.apiKey.findUniqueOrThrow({ where: { id: keyId } })).lastUsedAt, {
      what: 'lastUsedAt',
    });
    await gql(app.graphqlUrl, made.secret, Viewer);
    await gql(second.graphqlUrl, made.secret, Viewer);
    // Reads are answered without waiting for the write; give a stray write time to land.
    await new Promise((r) => setTimeout(r, 300));
    expect((await app.segue.db.apiKey.findUniqueOrThrow({ where: { id: keyId } })).lastUsedAt).toEqual(used);
    // A minute later (moved back by hand), the next use writes again.
    await app.segue.db.apiKey.update({ where: { id: keyId }, data: { lastUsedAt: new Date(Date.now() - 61_000) } });
    await gql(app.graphqlUrl, made.secret, Viewer);
    await until(async () => (await app.segue.db.apiKey.findUniqueOrThrow({ where: { id: keyId } })).lastUsedAt!.getTime() > Date.now() - 5_000, {
      what: 'a fresh lastUsedAt',
    });
  });

  it('refuses an empty name or a lifetime outside 1 to 3650 days with BAD_USER_INPUT, creating nothing', async () => {
    const account = await createTestAccount(app.segue);
    for (const input of [{ name: '  ' }, { name: 'x', expiresInDays: 0 }, { name: 'x', expiresInDays: 3651 }, { name: 'y'.repeat(101) }]) {
      const res = await gql(app.graphqlUrl, account.apiKey, CreateApiKey, { input });
      expect(codes(res)).toEqual(['BAD_USER_INPUT']);
      expect(res.errors![0]!.extensions!.fields).toEqual([Object.keys(input).at(-1) === 'expiresInDays' ? 'expiresInDays' : 'name']);
    }
    expect(await app.segue.db.apiKey.count({ where: { accountId: account.id } })).toBe(1);
  });

  it("revoking another account's key is NOT_FOUND and changes nothing; revoking twice keeps the first revokedAt", async () => {
    const [alice, bob] = [await createTestAccount(app.segue), await createTestAccount(app.segue)];
    const made = await newKey(alice, { name: 'alice ci' });
    const asBob = await gql(app.graphqlUrl, bob.apiKey, RevokeApiKey, { id: made.apiKey.id });
    expect(codes(asBob)).toEqual(['NOT_FOUND']);
    expect((await gql(app.graphqlUrl, made.secret, Viewer)).data!.viewer).not.toBeNull();

    const once = await gql(app.graphqlUrl, alice.apiKey, RevokeApiKey, { id: made.apiKey.id });
    const twice = await gql(app.graphqlUrl, alice.apiKey, RevokeApiKey, { id: made.apiKey.id });
    expect(once.data!.revokeApiKey.revokedAt).toBeTruthy();
    expect(twice.data!.revokeApiKey.revokedAt).toBe(once.data!.revokeApiKey.revokedAt);
  });

  it('a revoked key is refused on a second API process within 1 s; its WebSocket closes with 4403 and its SSE stream ends within 5 s', { timeout: 30_000 }, async () => {
    const account = await createTestAccount(app.segue);
    const made = await newKey(account, { name: 'to revoke' });
    const transitionId = await draftTransition(account);
    const open = await openStreams(second.graphqlUrl, made.secret, transitionId);
    expect((await gql(second.graphqlUrl, made.secret, Viewer)).data!.viewer).not.toBeNull();

    // Revoked through the first instance, with another key of the account.
    const revoked = await gql(app.graphqlUrl, account.apiKey, RevokeApiKey, { id: made.apiKey.id });
    const revokedAt = Date.now();
    expect(revoked.errors).toBeUndefined();

    const refused = await until(async () => {
      const res = await gql(second.graphqlUrl, made.secret, Viewer);
      return codes(res)[0] === 'UNAUTHENTICATED' ? res : null;
    }, { intervalMs: 20, what: 'the second instance to refuse the key' });
    expect(Date.now() - revokedAt).toBeLessThan(1_000);
    expect(refused.errors![0]!.message).toMatch(/revoked/);

    await until(() => open.closed.code !== null && open.sseEndedAt() > 0, { timeoutMs: 5_000, intervalMs: 20, what: 'WebSocket and SSE to end' });
    expect(open.closed.code).toBe(4403);
    expect(open.closed.at - revokedAt).toBeLessThan(5_000);
    expect(open.sseEndedAt() - revokedAt).toBeLessThan(5_000);
    expect(open.viaSse.errors).toEqual([]);
    // The other key of the account is untouched.
    expect((await gql(second.graphqlUrl, account.apiKey, Viewer)).data!.viewer).not.toBeNull();
    // A new connection with the revoked key is refused outright.
    let code = 0;
    const again = wsClient(second.graphqlUrl, made.secret, { onClose: (c) => (code = c) });
    const attempt = subscribe(again, TransitionUpdated, { id: transitionId }, (d) => d.transitionUpdated);
    await attempt.done.catch(() => undefined);
    expect(code).toBe(4403);
    await Promise.all([open.ws.dispose(), again.dispose()]);
  });

  it('a key revoked straight in the database (no notice) still loses its connections within 5 s', { timeout: 20_000 }, async () => {
    const account = await createTestAccount(app.segue);
    const made = await newKey(account, { name: 'revoked by hand' });
    const open = await openStreams(second.graphqlUrl, made.secret, await draftTransition(account));
    const keyId = (await app.segue.db.apiKey.findFirstOrThrow({ where: { accountId: account.id, name: 'revoked by hand' } })).id;
    await app.segue.db.apiKey.update({ where: { id: keyId }, data: { revokedAt: new Date() } });
    const revokedAt = Date.now();
    await until(() => open.closed.code !== null && open.sseEndedAt() > 0, { timeoutMs: 5_000, intervalMs: 20, what: 'the periodic re-check' });
    expect(open.closed.code).toBe(4403);
    expect(open.closed.at - revokedAt).toBeLessThan(5_000);
    await open.ws.dispose();
  });

  it('an expired key is refused with UNAUTHENTICATED, and connections opened with it end when it expires', { timeout: 20_000 }, async () => {
    const account = await createTestAccount(app.segue);
    const made = await newKey(account, { name: 'short-lived', expiresInDays: 1 });
    const keyId = (await app.segue.db.apiKey.findFirstOrThrow({ where: { accountId: account.id, name: 'short-lived' } })).id;
    // The same key, its day nearly over (time enough for its streams to open first).
    const expiresAt = new Date(Date.now() + 5_000);
    await app.segue.db.apiKey.update({ where: { id: keyId }, data: { expiresAt } });
    const open = await openStreams(app.graphqlUrl, made.secret, await draftTransition(account));
    await until(() => open.closed.code !== null && open.sseEndedAt() > 0, { timeoutMs: 9_000, intervalMs: 20, what: 'expiry to end the streams' });
    expect(open.closed.code).toBe(4403);
    expect(open.closed.at).toBeGreaterThanOrEqual(expiresAt.getTime());
    expect(open.closed.at - expiresAt.getTime()).toBeLessThan(1_500);
    const res = await gql(app.graphqlUrl, made.secret, Viewer);
    expect(codes(res)).toEqual(['UNAUTHENTICATED']);
    expect(res.errors![0]!.message).toMatch(/expired/);
    await open.ws.dispose();
  });
});

describe('npm run cli -- accounts keys', () => {
  it('create --json prints {"id","apiKey"}; list shows it without secrets; revoke stops it on the running API', { timeout: 60_000 }, async () => {
    const account = await createTestAccount(app.segue);
    const accountId = encodeId('Account', account.id);
    const create = run('npm', ['run', 'cli', '--', 'accounts', 'keys', 'create', accountId, '--name', 'deploy bot', '--json'], env);
    expect((await create.exited).code).toBe(0);
    const lines = create.stdout().split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    const printed = JSON.parse(lines[0]!) as { id: string; apiKey: string };
    expect(Object.keys(printed).sort()).toEqual(['apiKey', 'id']);
    expect((await gql(app.graphqlUrl, printed.apiKey, Viewer)).data!.viewer.id).toBe(accountId);

    const list = run('npm', ['run', 'cli', '--', 'accounts', 'keys', 'list', accountId, '--json'], env);
    expect((await list.exited).code).toBe(0);
    const keys = JSON.parse(list.stdout()) as Array<{ id: string; name: string; prefix: string; revokedAt: string | null }>;
    expect(keys.map((k) => k.name)).toEqual(['deploy bot', 'default']);
    expect(keys[0]).toMatchObject({ id: printed.id, prefix: printed.apiKey.slice(0, 11), revokedAt: null });
    expect(list.stdout()).not.toContain(printed.apiKey);
    expect(list.stdout()).not.toContain(account.apiKey);

    const open = await openStreams(app.graphqlUrl, printed.apiKey, await draftTransition(account));
    const revoke = run('npm', ['run', 'cli', '--', 'accounts', 'keys', 'revoke', printed.id], env);
    expect((await revoke.exited).code).toBe(0);
    expect(revoke.stdout()).toMatch(/Revoked API key "deploy bot"/);
    expect(codes(await gql(app.graphqlUrl, printed.apiKey, Viewer))).toEqual(['UNAUTHENTICATED']);
    await until(() => open.closed.code !== null, { timeoutMs: 5_000, what: 'the WebSocket to close' });
    expect(open.closed.code).toBe(4403);
    await open.ws.dispose();
  });
});

async function fetchNode(secret: string, id: string) {
  const res = await fetch(app.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
    body: JSON.stringify({ query: 'query($id: ID!) { node(id: $id) { id __typename } }', variables: { id } }),
  });
  return ((await res.json()) as { data: { node: unknown } }).data.node;
}
