import { execFileSync } from 'node:child_process';
import pg from 'pg';
import { ensurePostgres, ensureRedis } from './services.ts';

/**
 * Runs once before the suite: the services answer, and the test database exists and carries
 * every committed migration (`prisma migrate deploy` creates the database when it is missing).
 */
export default async function setup() {
  const databaseUrl = process.env.DATABASE_URL!;
  await ensurePostgres(new URL(databaseUrl));
  await dropLeftoverFileDatabases(new URL(databaseUrl));
  await ensureRedis(new URL(process.env.REDIS_URL!));
  try {
    execFileSync('npx', ['prisma', 'migrate', 'deploy'], {
      env: { ...process.env, DATABASE_URL: databaseUrl },
      stdio: 'pipe',
      encoding: 'utf8',
    });
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`prisma migrate deploy failed for the test database:\n${stdout ?? ''}${stderr ?? ''}`);
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Per-file databases (test/helpers/per-file-db.ts) left behind by an interrupted run: those whose
 * creating process is gone. Another test run going on at the same time keeps its own.
 */
async function dropLeftoverFileDatabases(template: URL) {
  const admin = new URL(template);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const prefix = `${template.pathname.slice(1)}_p`;
    const { rows } = await client.query<{ datname: string }>("SELECT datname FROM pg_database WHERE starts_with(datname, $1)", [prefix]);
    for (const { datname } of rows) {
      const pid = Number(/_p(\d+)_[0-9a-f]+$/.exec(datname)?.[1]);
      if (!pid || alive(pid)) continue;
      await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`).catch(() => undefined);
    }
  } finally {
    await client.end();
  }
}
