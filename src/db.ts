import { createHash } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from './generated/prisma/client.ts';

export type Db = PrismaClient;

/**
 * Plain SQL on the same pool as Prisma, for the few statements on the hot path of every
 * generation (the state machine's single-row changes): named prepared statements, parsed and
 * planned once per connection, and no ORM layer in between. Elsewhere, use Prisma.
 */
export interface Sql {
  query<T>(text: string, values: readonly unknown[]): Promise<T[]>;
}

// Prisma stores DateTime as UTC in "timestamp without time zone"; pg would read it as local time.
const TIMESTAMP = 1114;
const parsers: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === TIMESTAMP ? (value: string) => new Date(`${value.replace(' ', 'T')}Z`) : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

export interface Database {
  prisma: Db;
  sql: Sql;
  close(): Promise<void>;
}

/** One pool per process, shared by the Prisma client (driver adapter; Prisma 7 needs no engine) and `sql`. */
export function createDatabase(databaseUrl: string, options: { max?: number } = {}): Database {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: options.max ?? 10 });
  // An idle client's connection can drop (server restart); the pool replaces it on next use.
  pool.on('error', () => undefined);
  const prisma = new PrismaClient({
    adapter: new PrismaPg(pool),
    // A burst of requests waits its turn for a connection rather than failing after Prisma's 2 s.
    transactionOptions: { maxWait: 15_000, timeout: 30_000 },
  });
  const names = new Map<string, string>();
  return {
    prisma,
    sql: {
      async query<T>(text: string, values: readonly unknown[]) {
        let name = names.get(text);
        if (!name) names.set(text, (name = `s${createHash('sha1').update(text).digest('hex').slice(0, 16)}`));
        const result = await pool.query({ name, text, values: values as unknown[], types: parsers });
        return result.rows as T[];
      },
    },
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}
