import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiProcess, type ApiProcess } from './helpers/api-process.ts';
import { createTestAccount, gql, startTestApp, type TestAccount, type TestApp } from './helpers/app.ts';
import { transitionInput } from './helpers/fixtures.ts';
import { CancelTransition, CreateTransitions } from './helpers/operations.ts';
import { openRawSocket } from './helpers/raw-socket.ts';
import { until } from './helpers/wait.ts';

/**
 * A WebSocket connection presents its credential once (connectionParams.authorization); the API
 * keeps who it is, not the secret. Shown on a real API process: a heap snapshot taken while the
 * connection is open and subscribed holds no copy of the key it connected with. (A snapshot shows
 * strings up to 1,024 characters and no Buffer contents: a key held in either form would not
 * show; nothing of Segue holds one so.)
 */
const snapshots = mkdtempSync(join(tmpdir(), 'segue-heap-'));
// Both share a queue prefix, and so the channels changes travel on.
const env = { QUEUE_PREFIX: `h${randomBytes(4).toString('hex')}` };
let app: TestApp;
let api: ApiProcess;
let account: TestAccount;
beforeAll(async () => {
  [app, api] = await Promise.all([
    startTestApp(env),
    startApiProcess({ ...env, NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapshots}` }),
  ]);
  account = await createTestAccount(app.segue);
}, 60_000);
afterAll(async () => {
  await api?.stop();
  await app?.close();
  rmSync(snapshots, { recursive: true, force: true });
});

/** The API process's heap (after a full collection, as V8 takes a snapshot), as its bytes. */
async function heapOf(child: ApiProcess) {
  const before = new Set(readdirSync(snapshots));
  process.kill(child.child.process.pid!, 'SIGUSR2');
  const file = await until(() => readdirSync(snapshots).find((f) => f.endsWith('.heapsnapshot') && !before.has(f)), {
    what: 'a heap snapshot',
    timeoutMs: 60_000,
  });
  // Node writes it on the process's main thread, from the signal: once the process answers a
  // request again, the file is whole.
  const health = await fetch(`${child.url}/health`);
  expect(health.ok).toBe(true);
  return readFileSync(join(snapshots, file));
}

describe('a WebSocket connection and its credential', () => {
  it('keeps the principal, not the key: the open, subscribed connection leaves no copy of it in the heap', async () => {
    // Queued (no worker runs here), so it can be canceled later.
    const created = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: [transitionInput()], generate: true } });
    const id = created.data!.createTransitions.transitions[0]!.id;
    const connection = await openRawSocket<{ type: string; id?: string }>(api.graphqlUrl.replace(/^http/, 'ws'));
    // Extra connectionParams stay as they were sent (the snapshot is of this connection's
    // process, taken after its connection_init, when the marker shows); only the credential goes.
    const marker = `heap-check-${randomBytes(6).toString('hex')}`;
    connection.socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${account.apiKey}`, client: marker } }));
    await until(() => connection.messages.some((m) => m.type === 'connection_ack'), { what: 'connection_ack' });
    connection.socket.send(JSON.stringify({ id: 's', type: 'subscribe', payload: { query: `subscription { transitionUpdated(id: "${id}") { id status } }` } }));
    await until(() => connection.messages.some((m) => m.type === 'next' && m.id === 's'), { what: 'the snapshot of the subscription' });

    const heap = await heapOf(api);
    expect(heap.includes(Buffer.from(marker)), 'the snapshot holds the connection\'s other params').toBe(true);
    expect(heap.includes(Buffer.from(account.apiKey)), 'the API process holds the key the connection presented').toBe(false);

    // The connection still works on what it kept: a change reaches it.
    const seen = connection.messages.length;
    const updated = await gql(app.graphqlUrl, account.apiKey, CancelTransition, { id });
    expect(updated.errors, JSON.stringify(updated.errors)).toBeUndefined();
    await until(() => connection.messages.slice(seen).some((m) => m.type === 'next'), { what: 'the change after the snapshot' });
    expect(connection.closed()).toBeNull();
    connection.socket.close();
  }, 120_000);
});
