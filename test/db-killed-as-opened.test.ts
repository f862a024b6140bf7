import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase } from '../src/db.ts';
import { testConfig } from './helpers/app.ts';
import { startPgProxy, type PgProxy } from './helpers/pg-proxy.ts';

/**
 * A connection PostgreSQL terminates as it opens (a restart, a failover, pg_terminate_backend):
 * the termination can come in the very bytes that said the connection is ready. pg-pool hands the
 * connection over while it parses them, so the error is emitted before whoever awaited the
 * connection can listen; with no listener, it was an uncaught exception, the end of a worker
 * (seen in test/reliability-postgres.test.ts, about one run in four). A proxy in front of the
 * real PostgreSQL appends that termination to the first ReadyForQuery of every connection
 * (startPgProxy's killAsReady).
 */
let proxy: PgProxy;
beforeAll(async () => {
  proxy = await startPgProxy(new URL(testConfig().databaseUrl), { killAsReady: true });
});
afterAll(() => proxy?.close());

describe('a connection killed as it opens', () => {
  it('fails the statement, the transaction or the Prisma transaction that took it, and nothing else: no uncaught error', async () => {
    const uncaught: unknown[] = [];
    const record = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', record);
    const database = createDatabase(proxy.url, { max: 2, connectTimeoutMs: 5_000 });
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
