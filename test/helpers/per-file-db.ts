import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll } from 'vitest';

/**
 * Every test file gets a database of its own, cloned from the migrated template (segue_test) in
 * about a tenth of a second. Workers treat the whole database as their work list (the reconciler
 * re-creates jobs for every unfinished transition), so files must not see each other's rows.
 * Child processes that a test starts inherit DATABASE_URL, and with it this database.
 */
const template = new URL(process.env.DATABASE_URL!);
// The creating process's pid is in the name: a later run drops only databases whose process is gone.
const name = `${template.pathname.slice(1)}_p${process.pid}_${randomBytes(4).toString('hex')}`;
const admin = new URL(template);
admin.pathname = '/postgres';

async function sql(text: string) {
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

await sql(`CREATE DATABASE "${name}" TEMPLATE "${template.pathname.slice(1)}"`);
const own = new URL(template);
own.pathname = `/${name}`;
process.env.DATABASE_URL = own.toString();

afterAll(async () => {
  await sql(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
});
