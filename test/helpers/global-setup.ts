import { execFileSync } from 'node:child_process';
import { ensurePostgres, ensureRedis } from './services.ts';

/**
 * Runs once before the suite: the services answer, and the test database exists and carries
 * every committed migration (`prisma migrate deploy` creates the database when it is missing).
 */
export default async function setup() {
  const databaseUrl = process.env.DATABASE_URL!;
  await ensurePostgres(new URL(databaseUrl));
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
