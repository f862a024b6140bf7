import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createTestAccount, startTestApp, type TestAccount, type TestApp } from './helpers/app.ts';
import { metric } from './helpers/metrics.ts';
import { until } from './helpers/wait.ts';

/**
 * Every WebSocket is pinged once per SUBSCRIPTION_KEEPALIVE_MS and closed if it did not answer the
 * previous ping: a browser that vanished without a close frame (a laptop shut, a network gone)
 * does not keep its subscriptions open for ever.
 */
const KEEPALIVE_MS = 1_000;
let app: TestApp;
let account: TestAccount;
beforeAll(async () => {
  app = await startTestApp({ SUBSCRIPTION_KEEPALIVE_MS: String(KEEPALIVE_MS) });
  account = await createTestAccount(app.segue);
});
afterAll(() => app?.close());

/**
 * A graphql-transport-ws connection by hand, subscribed to the account's transitions. It answers
 * pings until `stopPongs()` (as a browser does until it vanishes).
 */
async function connect() {
  const socket = new WebSocket(app.graphqlUrl.replace(/^http/, 'ws'), 'graphql-transport-ws', { autoPong: false });
  const messages: Array<{ type: string }> = [];
  let pings = 0;
  let pongs = true;
  let closedAt = 0;
  socket.on('message', (data) => messages.push(JSON.parse(String(data))));
  socket.on('ping', (data) => {
    pings++;
    if (pongs) socket.pong(data);
  });
  socket.on('close', () => (closedAt = Date.now()));
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${account.apiKey}` } }));
  await until(() => messages.some((m) => m.type === 'connection_ack'), { what: 'connection_ack' });
  socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'subscription { transitionUpdated { id } }' } }));
  return {
    socket,
    pings: () => pings,
    closedAt: () => closedAt,
    stopPongs: () => (pongs = false),
  };
}

const openSubscriptions = () => metric(app.url, 'segue_subscriptions_open', '', true);

describe('WebSocket keepalive', () => {
  it('a socket that stops answering pings is closed within two periods and its subscription ends; one that answers stays open', { timeout: 30_000 }, async () => {
    const live = await connect();
    const silent = await connect();
    await until(async () => (await openSubscriptions()) === 2, { what: 'both subscriptions open' });
    silent.stopPongs();
    const silentSince = Date.now();

    await until(() => silent.closedAt() > 0, { what: 'the silent socket closed', timeoutMs: 10 * KEEPALIVE_MS });
    // Its next ping comes within a period, and the sweep after that finds no pong.
    expect(silent.closedAt() - silentSince).toBeLessThanOrEqual(2 * KEEPALIVE_MS + 1_000);
    expect(silent.pings()).toBeGreaterThanOrEqual(1);
    await until(async () => (await openSubscriptions()) === 1, { what: 'the silent socket\'s subscription ended' });

    // The socket that answers is still open several periods on, pinged once per period.
    const pingsBefore = live.pings();
    await new Promise((r) => setTimeout(r, 4 * KEEPALIVE_MS));
    expect(live.socket.readyState).toBe(WebSocket.OPEN);
    // Once per period, not on every tick of the sweep.
    expect(live.pings() - pingsBefore).toBeGreaterThanOrEqual(3);
    expect(live.pings() - pingsBefore).toBeLessThanOrEqual(5);
    expect(await openSubscriptions()).toBe(1);
    live.socket.close();
    await until(async () => (await openSubscriptions()) === 0, { what: 'the live socket\'s subscription ended' });
  });
});
