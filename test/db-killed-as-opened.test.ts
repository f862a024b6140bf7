import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../src/db.ts';
import { testConfig } from './helpers/app.ts';

/**
 * A connection PostgreSQL terminates as it opens (a restart, a failover, pg_terminate_backend):
 * the termination can come in the very bytes that said the connection is ready. pg-pool hands the
 * connection over while it parses them, so the error is emitted before whoever awaited the
 * connection can listen; with no listener, it was an uncaught exception, the end of a worker
 * (seen in test/reliability-postgres.test.ts, about one run in four). A proxy in front of the
 * real PostgreSQL appends that termination to the first ReadyForQuery of every connection.
 */
const terminated = (() => {
  const fields = Buffer.from('SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0');
  const head = Buffer.alloc(5);
  head.write('E', 0);
  head.writeInt32BE(4 + fields.length, 1);
  return Buffer.concat([head, fields]);
})();

let server: Server;
let url: string;
const sockets = new Set<Socket>();
beforeAll(async () => {
  const target = new URL(testConfig().databaseUrl);
  server = createServer((client) => {
    const upstream = connect({ host: target.hostname, port: Number(target.port || 5432) });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => socket.destroy());
      socket.on('close', () => sockets.delete(socket));
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    // The server's messages, whole (a type byte and a length), passed on as they come (a login
    // that asks for a password goes through): the first ReadyForQuery ('Z') and the termination
    // leave in one write, and the connection ends.
    let pending = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      let at = 0;
      while (pending.length - at >= 5) {
        const end = at + 1 + pending.readInt32BE(at + 1);
        if (pending.length < end) break;
        if (pending[at] === 0x5a) {
          client.end(Buffer.concat([pending.subarray(0, end), terminated]));
          upstream.destroy();
          return;
        }
        at = end;
      }
      client.write(pending.subarray(0, at));
      pending = pending.subarray(at);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const proxied = new URL(testConfig().databaseUrl);
  proxied.hostname = '127.0.0.1';
  proxied.port = String((server.address() as { port: number }).port);
  url = proxied.href;
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((r) => server?.close(r));
});

describe('a connection killed as it opens', () => {
  it('fails the statement, the transaction or the Prisma transaction that took it, and nothing else: no uncaught error', async () => {
    const uncaught: unknown[] = [];
    const record = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', record);
    const database = createDatabase(url, { max: 2, connectTimeoutMs: 5_000 });
    try {
      // Each path that awaits a connection of its own, then listens to it: each fails on the
      // termination (not on a timeout), and no killed connection stays in the pool.
      const killed = /not queryable|terminating connection|Connection terminated/;
      await expect(database.sql.query('SELECT 1', [], { onSend: () => undefined })).rejects.toThrow(killed);
      await expect(database.sql.transaction((tx) => tx.query('SELECT 1', []))).rejects.toThrow(killed);
      await expect(database.prisma.$transaction(async (tx) => tx.$queryRaw`SELECT 1`)).rejects.toThrow(killed);
      await expect(database.lane('claims').query('SELECT 1', [], { onSend: () => undefined })).rejects.toThrow(killed);
      // Whatever the killed connections still had to say has been said.
      await new Promise((r) => setTimeout(r, 100));
      expect(uncaught).toEqual([]);
      expect(database.poolStats()).toMatchObject({ busy: 0, idle: 0 });
    } finally {
      process.off('uncaughtException', record);
      await database.close();
    }
  });
});
