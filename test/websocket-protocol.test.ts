import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { createTestAccount, gql, startTestApp, type TestAccount, type TestApp } from './helpers/app.ts';
import { transitionInput } from './helpers/fixtures.ts';
import { CreateTransitions } from './helpers/operations.ts';
import { openRawSocket } from './helpers/raw-socket.ts';
import { until } from './helpers/wait.ts';

/**
 * The WebSocket binding hands graphql-ws parsed messages, with query texts shared between
 * subscriptions: what a client sees of the protocol is unchanged, malformed messages included.
 */
let app: TestApp;
let account: TestAccount;
beforeAll(async () => {
  app = await startTestApp();
  account = await createTestAccount(app.segue);
});
afterAll(() => app?.close());

type Received = { id?: string; type: string; payload?: { data?: { transitionUpdated?: { id: string; status: string } } } };

const wsUrl = () => app.graphqlUrl.replace(/^http/, 'ws');
const init = (socket: WebSocket) => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${account.apiKey}` } }));

/** A graphql-transport-ws connection by hand, acknowledged. */
async function connect() {
  const connection = await openRawSocket<Received>(wsUrl());
  init(connection.socket);
  await until(() => connection.messages.some((m) => m.type === 'connection_ack'), { what: 'connection_ack' });
  return connection;
}

describe('graphql-transport-ws messages', () => {
  it('malformed JSON, JSON that is not a protocol message and a doubly encoded message close the connection with 4400', async () => {
    const subscribe = { type: 'subscribe', id: '1', payload: { query: 'subscription { transitionUpdated { id } }' } };
    for (const text of ['{"type": "subscribe", "id": ', JSON.stringify({ ...subscribe, payload: { query: 42 } }), '[1, 2]', JSON.stringify(JSON.stringify(subscribe))]) {
      const connection = await connect();
      connection.socket.send(text);
      await until(() => connection.closed() !== null, { what: `the connection closed after ${text}` });
      expect(connection.closed()!.code).toBe(4400);
    }
  });

  it('a message over MAX_BODY_BYTES closes its connection with 1009 (Message Too Big) on its frame header, before its body comes; one of MAX_BODY_BYTES is answered', async () => {
    const cap = app.segue.config.http.maxBodyBytes;
    const under = await connect();
    const padded = (bytes: number) => {
      const message = { id: 'q', type: 'subscribe', payload: { query: '{ __typename }', variables: { pad: '' } } };
      message.payload.variables.pad = 'x'.repeat(bytes - Buffer.byteLength(JSON.stringify(message)));
      return JSON.stringify(message);
    };
    under.socket.send(padded(cap));
    await until(() => under.messages.some((m) => m.type === 'next' && m.id === 'q'), { what: 'the answer to a message of MAX_BODY_BYTES' });
    expect(under.closed()).toBeNull();
    // Only the header of a larger frame is sent: the connection is closed on it, its body never awaited.
    const over = await connect();
    const header = Buffer.alloc(14);
    header[0] = 0x81; // FIN, text
    header[1] = 0x80 | 127; // masked (as a client's frames are), 64-bit length
    header.writeBigUInt64BE(BigInt(cap + 1), 2);
    randomBytes(4).copy(header, 10);
    (over.socket as unknown as { _socket: Socket })._socket.write(header);
    await until(() => over.closed() !== null, { what: 'the connection closed' });
    expect(over.closed()!.code).toBe(1009);
    under.socket.close();
  });

  it('subscriptions that send the same query text each get their own results, on one connection and on two', async () => {
    const created = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: [transitionInput(), transitionInput()] } });
    const [first, second] = created.data!.createTransitions.transitions.map((t) => t.id);
    const query = 'subscription ($id: ID) { transitionUpdated(id: $id) { id status } }';
    const one = await connect();
    const two = await connect();
    one.socket.send(JSON.stringify({ id: 'a', type: 'subscribe', payload: { query, variables: { id: first } } }));
    one.socket.send(JSON.stringify({ id: 'b', type: 'subscribe', payload: { query, variables: { id: second } } }));
    two.socket.send(JSON.stringify({ id: 'a', type: 'subscribe', payload: { query, variables: { id: second } } }));
    const snapshot = (messages: Received[], id: string) => messages.find((m) => m.type === 'next' && m.id === id)?.payload?.data?.transitionUpdated;
    await until(() => snapshot(one.messages, 'a') && snapshot(one.messages, 'b') && snapshot(two.messages, 'a'), { what: 'three snapshots' });
    expect(snapshot(one.messages, 'a')).toEqual({ id: first, status: 'DRAFT' });
    expect(snapshot(one.messages, 'b')).toEqual({ id: second, status: 'DRAFT' });
    expect(snapshot(two.messages, 'a')).toEqual({ id: second, status: 'DRAFT' });
    // An operation id in use is refused as graphql-ws refuses it (4409), whatever the query.
    one.socket.send(JSON.stringify({ id: 'a', type: 'subscribe', payload: { query, variables: { id: second } } }));
    await until(() => one.closed() !== null, { what: 'the duplicate id closed the connection' });
    expect(one.closed()!.code).toBe(4409);
    two.socket.close();
  });

  it('through the API: a socket that sends no connection_init is closed with 4408 once the 3 s wait is over; one that sends it 1.5 s in is acknowledged and stays; no timer is armed per connection', { timeout: 20_000 }, async () => {
    const open = () => openRawSocket<Received>(wsUrl());
    // graphql-ws' own wait armed a timer per connection (kept by its closure for as long as the
    // connection lives): 40 connections here arm none.
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const timersBefore = timers();
    const idle = await Promise.all(Array.from({ length: 40 }, () => open()));
    expect(timers() - timersBefore).toBeLessThan(10);

    const late = await open();
    await new Promise((r) => setTimeout(r, 1_500));
    init(late.socket);
    await until(() => late.messages.some((m) => m.type === 'connection_ack'), { what: 'the late connection_ack' });

    await until(() => idle.every((c) => c.closed() !== null), { what: 'the silent sockets closed', timeoutMs: 8_000 });
    for (const c of idle) {
      expect(c.closed()!.code).toBe(4408);
      expect(c.closed()!.reason).toBe('Connection initialisation timeout');
      // Not before the wait; within a quarter of it (one check) and some slack after.
      expect(c.closed()!.at - c.startedAt).toBeGreaterThanOrEqual(3_000);
      expect(c.closed()!.at - c.openedAt).toBeLessThan(3_000 + 750 + 1_000);
    }
    // Past its own wait, the socket that did send connection_init is still open.
    await new Promise((r) => setTimeout(r, Math.max(0, late.openedAt + 4_500 - performance.now())));
    expect(late.closed()).toBeNull();
    expect(late.socket.readyState).toBe(WebSocket.OPEN);
    late.socket.close();
  });
});
