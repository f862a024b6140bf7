import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createAuthenticator } from '../src/auth/authenticate.ts';
import { createDatabase } from '../src/db.ts';

const MIGRATIONS = new URL('../prisma/migrations/', import.meta.url).pathname;
const KEYS_MIGRATION = readdirSync(MIGRATIONS).find((name) => name.endsWith('_api_keys'))!;

const base = new URL(process.env.DATABASE_URL!);
// The per-file database's name plus hex digits: a run interrupted here leaves a database the next
// run's global setup recognises (by its pid) and drops.
const name = `${base.pathname.slice(1)}${randomBytes(3).toString('hex')}`;
const admin = new URL(base);
admin.pathname = '/postgres';
const target = new URL(base);
target.pathname = `/${name}`;

async function withClient<T>(url: URL, fn: (client: pg.Client) => Promise<T>) {
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

afterAll(() => withClient(admin, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)));

describe('the api_keys migration', () => {
  it('moves every existing account key into ApiKey, so keys made before it keep working', async () => {
    await withClient(admin, (c) => c.query(`CREATE DATABASE "${name}"`));
    const oldKey = `sg_${randomBytes(32).toString('base64url')}`;
    const accountId = await withClient(target, async (c) => {
      for (const dir of readdirSync(MIGRATIONS).filter((d) => /^\d+_/.test(d)).sort()) {
        if (dir === KEYS_MIGRATION) break;
        await c.query(readFileSync(`${MIGRATIONS}${dir}/migration.sql`, 'utf8'));
      }
      // An account as the CLI made it before: the key's sha256 on the account row.
      const { rows } = await c.query<{ id: string }>(
        `INSERT INTO "Account" ("id", "name", "apiKeyHash") VALUES (gen_random_uuid(), 'before keys', $1) RETURNING "id"`,
        [createHash('sha256').update(oldKey).digest('hex')],
      );
      await c.query(readFileSync(`${MIGRATIONS}${KEYS_MIGRATION}/migration.sql`, 'utf8'));
      return rows[0]!.id;
    });

    const database = createDatabase(target.toString(), { max: 2 });
    try {
      const { principal } = await createAuthenticator({ db: database.prisma, tokens: null }).authenticate(`Bearer ${oldKey}`);
      expect(principal).toMatchObject({ kind: 'key', accountId });
      const keys = await database.prisma.apiKey.findMany({ where: { accountId } });
      expect(keys).toEqual([expect.objectContaining({ name: 'default', prefix: 'sg_', revokedAt: null, expiresAt: null })]);
    } finally {
      await database.close();
    }
  });
});
