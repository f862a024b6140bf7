import { createRequire } from 'node:module';

/** The SQL statements this process sends while `work` runs (node-postgres carries Prisma's and Segue's own). */
export async function statementsDuring(work: () => Promise<unknown>): Promise<string[]> {
  const pg = createRequire(import.meta.url)('pg') as { Client: { prototype: { query: (...args: unknown[]) => unknown } } };
  const query = pg.Client.prototype.query;
  const sent: string[] = [];
  pg.Client.prototype.query = function (this: unknown, ...args: unknown[]) {
    const first = args[0] as string | { text?: string };
    sent.push((typeof first === 'string' ? first : (first.text ?? '')).replace(/\s+/g, ' '));
    return query.apply(this, args);
  };
  try {
    await work();
  } finally {
    pg.Client.prototype.query = query;
  }
  return sent;
}
