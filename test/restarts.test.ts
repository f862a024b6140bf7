import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { mediaJobId } from '../src/queue/media-queue.ts';
import { createSegue } from '../src/runtime.ts';
import { codes, gql, testConfig } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions, Viewer } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { freePort } from './helpers/process.ts';
import { startPrivatePostgres, startPrivateRedis } from './helpers/services.ts';
import { until } from './helpers/wait.ts';

let p: Pipeline | undefined;
let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  await p?.close();
  p = undefined;
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

const readiness = async (url: string) => (await (await fetch(`${url}/ready`)).json()) as { status: string; checks: Record<string, string> };

describe('restarts of the real services during a batch', () => {
  it('PostgreSQL stops and starts: clear UNAVAILABLE errors while it is down, every transition completes after', { timeout: 150_000 }, async () => {
    const pg = await startPrivatePostgres(await freePort());
    cleanup.push(() => pg.close());
    execFileSync('npx', ['prisma', 'migrate', 'deploy'], { env: { ...process.env, DATABASE_URL: pg.url }, stdio: 'ignore' });
    p = await startPipeline({ emulator: { latencyMs: 1500 }, env: { DATABASE_URL: pg.url, FAL_CONCURRENCY: '5' }, childWorkers: 1 });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(15) });
    await until(() => p!.emulator.counters().submitted >= 5, { what: 'the batch under way' });

    pg.stop();
    const down = await gql(p.app.graphqlUrl, account.apiKey, Viewer);
    expect(codes(down)).toEqual(['UNAVAILABLE']);
    expect(down.errors![0]!.message).toMatch(/unavailable; try again shortly/);
    const ready = await readiness(p.app.url);
    expect(ready.status).toBe('unavailable');
    expect(ready.checks.postgres).toBe('down');
    await new Promise((r) => setTimeout(r, 3000)); // fal finishes requests meanwhile; nothing can be written
    pg.start();

    await until(async () => (await readiness(p!.app.url)).status === 'ready', { what: 'ready again' });
    const rows = await p.settled(batch!.id, 120_000);
    expect(rows.filter((r) => r.status === 'COMPLETED')).toHaveLength(15);
    expect(p.emulator.counters()).toMatchObject({ duplicateInputs: 0, submitted: 15 });
  });

  it('Redis stops and starts (losing every job): mutations still land, every transition completes after', { timeout: 150_000 }, async () => {
    const port = await freePort();
    let redis = await startPrivateRedis(port);
    cleanup.push(() => redis.stop());
    p = await startPipeline({ emulator: { latencyMs: 1500 }, env: { REDIS_URL: redis.url, FAL_CONCURRENCY: '5' }, childWorkers: 1 });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(10) });
    await until(() => p!.emulator.counters().submitted >= 5, { what: 'the batch under way' });

    await redis.stop();
    const ready = await readiness(p.app.url);
    expect(ready.checks.redis).toBe('down');
    // PostgreSQL holds the truth: a generation request is accepted (promptly); its jobs come when
    // Redis is back.
    const asked = Date.now();
    const during = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: transitionInputs(3), generate: true },
    });
    expect(during.errors).toBeUndefined();
    expect(Date.now() - asked).toBeLessThan(10_000);
    await new Promise((r) => setTimeout(r, 2000));
    redis = await startPrivateRedis(port);

    const rows = await p.settled(batch!.id, 120_000);
    expect(rows.filter((r) => r.status === 'COMPLETED')).toHaveLength(10);
    const duringBatch = during.data!.createTransitions.batch!.id;
    const later = await p.settled(Buffer.from(duringBatch, 'base64url').toString().split(':')[1]!, 120_000);
    expect(later.filter((r) => r.status === 'COMPLETED')).toHaveLength(3);
    expect(p.emulator.counters().duplicateInputs).toBe(0);
  });

  it('Redis hangs (connections open, nothing answered): mutations still land within a bound, every transition completes once it answers again', { timeout: 150_000 }, async () => {
    const redis = await startPrivateRedis(await freePort());
    cleanup.push(() => redis.stop());
    p = await startPipeline({ emulator: { latencyMs: 1500 }, env: { REDIS_URL: redis.url, FAL_CONCURRENCY: '5' }, childWorkers: 1 });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(6) });
    await until(() => p!.emulator.counters().submitted >= 5, { what: 'the batch under way' });
    // The API's connections are up (ready), so nothing fails fast: each Redis call must give up by itself.
    await gql(p.app.graphqlUrl, account.apiKey, Viewer);

    const create = () => gql(p!.app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: transitionInputs(3), generate: true } });
    // A queue first used while Redis is silent (a worker's first reconciler pass, an API's first
    // combine) gives up on that call only, not for the rest of its process's life.
    const fresh = createSegue(testConfig({ REDIS_URL: redis.url, QUEUE_PREFIX: `${p.env.QUEUE_PREFIX}-fresh` }));
    cleanup.push(() => fresh.close());
    await fresh.generationJobs.ready();
    const poster = { kind: 'poster' as const, transitionId: randomUUID(), run: 1 };
    let firstUse: Promise<string>;
    let during: Awaited<ReturnType<typeof create>>;
    const asked = Date.now();
    try {
      redis.pause();
      firstUse = fresh.mediaJobs.add(poster).then(() => 'added', (error: Error) => error.message);
      during = await Promise.race([
        create(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('createTransitions did not answer in 30 s')), 30_000).unref()),
      ]);
    } finally {
      redis.resume();
    }
    const tookMs = Date.now() - asked;
    expect(during.errors).toBeUndefined();
    // README: the rate limit's check gives up after 1 s, a publish after 2 s, a job's enqueue after
    // 5 s; with 4 s for a loaded machine (this file's workers run beside it).
    expect(tookMs).toBeLessThan(1_000 + 2_000 + 5_000 + 4_000);
    expect(await firstUse).toMatch(/timed out/i);
    await fresh.mediaJobs.add(poster);
    expect((await fresh.mediaJobs.queue.getJob(mediaJobId(poster)))?.data).toEqual(poster);
    const duringBatch = Buffer.from(during.data!.createTransitions.batch!.id, 'base64url').toString().split(':')[1]!;
    // In PostgreSQL, whatever Redis did meanwhile; the reconciler gives them jobs if theirs were lost.
    expect(await p.app.segue.db.transition.count({ where: { batchId: duringBatch } })).toBe(3);

    const rows = await p.settled(batch!.id, 120_000);
    expect(rows.filter((r) => r.status === 'COMPLETED')).toHaveLength(6);
    const later = await p.settled(duringBatch, 120_000);
    expect(later.filter((r) => r.status === 'COMPLETED')).toHaveLength(3);
    expect(p.emulator.counters()).toMatchObject({ duplicateInputs: 0, submitted: 9 });
  });
});
