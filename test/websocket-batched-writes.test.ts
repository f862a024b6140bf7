import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { GraphQLInt, GraphQLObjectType, GraphQLSchema, GraphQLString } from 'graphql';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { QUEUED_MAX, serveGraphqlWs } from '../src/http/graphql-ws-server.ts';
import { openRawSocket } from './helpers/raw-socket.ts';
import { until } from './helpers/wait.ts';

/**
 * Messages graphql-ws sends one after another in one turn of the event loop (a subscription's
 * snapshot: one per row) leave the server in one write to the kernel, not one each: for 10,000
 * subscribers reconnecting at once, a write per frame was the largest part of the API's CPU.
 * A real ws server and real sockets; the server's TCP writes are counted where Node makes them.
 */
const log = pino({ level: 'silent' });
const ROWS = 20;
let produced = 0;
let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

const schema = new GraphQLSchema({
  query: new GraphQLObjectType({ name: 'Query', fields: { ok: { type: GraphQLString } } }),
  subscription: new GraphQLObjectType({
    name: 'Subscription',
    fields: {
      // Rows of about 1 KB, as many as asked for, as fast as they are taken.
      padded: {
        type: GraphQLString,
        args: { count: { type: GraphQLInt } },
        subscribe: async function* (_: unknown, { count }: { count: number }) {
          for (let n = 1; n <= count; n++) {
            produced += 1;
            yield { padded: `${n} ${'x'.repeat(1_000)}` };
          }
        },
      },
      rows: {
        type: GraphQLInt,
        args: { count: { type: GraphQLInt } },
        // A snapshot as Segue's subscriptions start: rows already read, then nothing more.
        subscribe: async function* (_: unknown, { count }: { count: number }) {
          for (let n = 1; n <= count; n++) yield { rows: n };
        },
      },
    },
  }),
});

async function serve() {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  // Writes to the kernel, per connection: net.Socket makes one `_write` or `_writev` call for each.
  const writes = { count: 0 };
  const sockets: WebSocket[] = [];
  wss.on('connection', (socket, request) => {
    sockets.push(socket);
    const tcp = request.socket as Socket & { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
    const write = tcp._write;
    const writev = tcp._writev;
    tcp._write = function (...args) {
      writes.count += 1;
      return write.apply(this, args);
    };
    tcp._writev = function (...args) {
      writes.count += 1;
      return writev.apply(this, args);
    };
  });
  const server = serveGraphqlWs({ schema, onConnect: () => true }, wss, (socket) => ({ socket }), log, { keepAliveMs: 60_000 });
  stop = () => server.dispose();
  return { url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, writes, sockets };
}

describe('messages sent together', () => {
  it('go out in one write: a 20-message snapshot, in order, then complete', async () => {
    const { url, writes } = await serve();
    const client = await openRawSocket<{ type: string; payload?: { data?: { rows: number } } }>(url);
    client.socket.send(JSON.stringify({ type: 'connection_init' }));
    await until(() => client.messages.some((m) => m.type === 'connection_ack'), { what: 'connection_ack' });
    const before = writes.count;
    client.socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: `subscription { rows(count: ${ROWS}) }` } }));
    await until(() => client.messages.some((m) => m.type === 'complete'), { what: 'the subscription complete' });
    const rows = client.messages.filter((m) => m.type === 'next').map((m) => m.payload!.data!.rows);
    expect(rows).toEqual(Array.from({ length: ROWS }, (_, i) => i + 1));
    // One write for the 20 rows (and the complete, or one more for it); a write per frame was 21.
    expect(writes.count - before).toBe(1);
    client.socket.close();
  });

  it('stay bounded for a client that stops reading: under QUEUED_MAX plus a frame, and the subscription waits', async () => {
    const { url, sockets } = await serve();
    const client = await openRawSocket<{ type: string }>(url);
    client.socket.send(JSON.stringify({ type: 'connection_init' }));
    await until(() => client.messages.some((m) => m.type === 'connection_ack'), { what: 'connection_ack' });
    // The client's TCP socket stops reading: the kernel's buffers fill, then the server's queue.
    (client.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    produced = 0;
    client.socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'subscription { padded(count: 1000000) }' } }));
    const server = sockets.at(-1)!;
    let most = 0;
    let stalledAt = -1;
    // Until production stops for 500 ms (the subscription waits on its writes), at most 10 s.
    await until(
      async () => {
        most = Math.max(most, server.bufferedAmount);
        const seen = produced;
        await new Promise((resolve) => setTimeout(resolve, 500));
        most = Math.max(most, server.bufferedAmount);
        if (produced === seen) stalledAt = seen;
        return produced === seen && seen > 0;
      },
      { what: 'the subscription waiting on its writes', timeoutMs: 10_000, intervalMs: 0 },
    );
    expect(stalledAt).toBeGreaterThan(0);
    expect(stalledAt).toBeLessThan(1_000_000);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThan(QUEUED_MAX + 2_000);
    client.socket.terminate();
  });
});
