import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { serveGraphqlWs } from '../src/http/graphql-ws-server.ts';
import { openRawSocket } from './helpers/raw-socket.ts';
import { until } from './helpers/wait.ts';

/**
 * The wait for connection_init, kept by Segue's binding of graphql-ws (one check over the
 * connections still waiting) rather than by a timer per connection: a real ws server and real
 * sockets, with a short wait so the timings are quick to see.
 */
const WAIT_MS = 400;
const log = pino({ level: 'silent' });
let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

async function serve(connectionInitWaitTimeout: number | undefined) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  const server = serveGraphqlWs({ connectionInitWaitTimeout, onConnect: () => true }, wss, (socket) => ({ socket }), log, { keepAliveMs: 60_000 });
  stop = () => server.dispose();
  const url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`;
  return { server, url };
}

const init = (socket: WebSocket) => socket.send(JSON.stringify({ type: 'connection_init' }));

describe('the wait for connection_init', () => {
  it('closes a silent socket with 4408 once the wait is over, within a quarter of it after; a socket that sends it is acknowledged and stays', async () => {
    const { server, url } = await serve(WAIT_MS);
    const silent = await openRawSocket(url);
    const prompt = await openRawSocket(url);
    init(prompt.socket);
    await until(() => prompt.messages.some((m) => m.type === 'connection_ack'), { what: 'connection_ack' });

    await until(() => silent.closed() !== null, { what: 'the silent socket closed', timeoutMs: 5_000 });
    expect(silent.closed()!.code).toBe(4408);
    expect(silent.closed()!.reason).toBe('Connection initialisation timeout');
    expect(silent.closed()!.at - silent.startedAt).toBeGreaterThanOrEqual(WAIT_MS);
    // One check comes every quarter of the wait; the rest is slack for a loaded machine.
    expect(silent.closed()!.at - silent.openedAt).toBeLessThan(WAIT_MS + WAIT_MS / 4 + 1_000);

    // Well past its own wait, the socket that sent connection_init is open, and nothing waits.
    await new Promise((r) => setTimeout(r, 2 * WAIT_MS));
    expect(prompt.closed()).toBeNull();
    expect(server.waitingForInit()).toBe(0);
    prompt.socket.close();
  });

  it('forgets a socket as soon as it closes, one without graphql-transport-ws at once (4406), and every one on dispose', async () => {
    const { server, url } = await serve(WAIT_MS);
    const leaving = await openRawSocket(url);
    expect(server.waitingForInit()).toBe(1);
    leaving.socket.close();
    await until(() => server.waitingForInit() === 0, { what: 'the closed socket forgotten', timeoutMs: WAIT_MS / 2 });

    // No subprotocol at all (the server accepts no other): graphql-ws closes it with 4406.
    const other = await openRawSocket(url, []);
    expect(server.waitingForInit()).toBe(0);
    await until(() => other.closed() !== null, { what: 'the other subprotocol closed' });
    expect(other.closed()!.code).toBe(4406);

    await openRawSocket(url);
    await openRawSocket(url);
    expect(server.waitingForInit()).toBe(2);
    await server.dispose();
    stop = undefined;
    expect(server.waitingForInit()).toBe(0);
  });

  it('with no wait (0, as graphql-ws reads it), a silent socket stays open', async () => {
    const { server, url } = await serve(0);
    const silent = await openRawSocket(url);
    expect(server.waitingForInit()).toBe(0);
    await new Promise((r) => setTimeout(r, 2 * WAIT_MS));
    expect(silent.closed()).toBeNull();
    silent.socket.close();
  });
});
