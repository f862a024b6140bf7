import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { freePort } from './helpers/process.ts';
import { startPrivateRedis } from './helpers/services.ts';
import { until } from './helpers/wait.ts';

let p: Pipeline | undefined;
let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  await p?.close();
  p = undefined;
  for (const c of cleanup) await c();
  cleanup = [];
});

const completedCount = (pipeline: Pipeline, batchId: string) =>
  pipeline.app.segue.db.transition.count({ where: { batchId, status: 'COMPLETED' } });

describe('crash safety', () => {
  it('kill -9 of a worker while it tracks fal requests: another resumes by request id; all complete, none submitted twice', { timeout: 120_000 }, async () => {
    p = await startPipeline({
      emulator: { latencyMs: 3000 },
      env: { FAL_CONCURRENCY: '40', WORKER_CONCURRENCY: '40' },
      childWorkers: 2,
    });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(40) });
    // Every request is at fal and recorded: the workers are only tracking now.
    await until(
      async () => (await p!.app.segue.db.transition.count({ where: { batchId: batch!.id, falRequestId: { not: null } } })) === 40,
      { timeoutMs: 30_000, what: 'all 40 submitted' },
    );
    // A worker that tracks some of them (one of the two may have taken them all).
    const victim = p.children.find((child) => /submitted to fal/.test(child.output()))!;
    expect(victim).toBeDefined();
    victim.process.kill('SIGKILL');
    expect(await victim.exited).toEqual({ code: null, signal: 'SIGKILL' });

    const rows = await p.settled(batch!.id, 90_000);
    expect(rows.filter((r) => r.status === 'COMPLETED')).toHaveLength(40);
    expect(rows.every((r) => r.attempts === 1)).toBe(true);
    expect(p.emulator.counters()).toMatchObject({ duplicateInputs: 0, submitted: 40 });
  });

  it('kill -9 of workers at random moments mid-batch: nothing is submitted twice, nothing is lost', { timeout: 180_000 }, async () => {
    p = await startPipeline({
      emulator: { latencyMs: 700 },
      webhooks: true,
      // A submit whose worker died before it could record the answer waits this long for fal's
      // callback before it is reported as uncertain.
      // A copy lost with its killed worker is queued again once a copy could have timed out (5 s here).
      env: { FAL_CONCURRENCY: '10', WORKER_CONCURRENCY: '20', FAL_TIMEOUT_MS: '8000', MEDIA_FETCH_TIMEOUT_MS: '5000' },
      childWorkers: 3,
    });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(60) });
    await until(async () => (await completedCount(p!, batch!.id)) >= 5, { timeoutMs: 30_000, what: 'the batch under way' });
    for (let round = 0; round < 3; round++) {
      const victim = p.children.find((c) => c.process.exitCode === null && c.process.signalCode === null)!;
      await new Promise((r) => setTimeout(r, 300 + Math.random() * 700));
      victim.process.kill('SIGKILL');
      await victim.exited;
      await p.startChildWorker();
    }

    const rows = await p.settled(batch!.id, 120_000);
    const c = p.emulator.counters();
    expect(c.duplicateInputs).toBe(0);
    expect(c.maxInFlight).toBeLessThanOrEqual(10);
    const sentPrompts = new Set(p.emulator.requests().map((r) => (r.input as { prompt: string }).prompt));
    for (const row of rows) {
      // A kill between recording the intent to submit and sending it leaves a submit that fal
      // never saw; Segue cannot tell it from a lost answer, so it reports it rather than risk
      // paying twice. Anything fal did receive completes (its callback brings the request id).
      if (row.status !== 'COMPLETED') {
        expect(row).toMatchObject({ status: 'FAILED', errorCode: 'FAL_SUBMIT_UNCERTAIN' });
        expect(sentPrompts.has(row.prompt)).toBe(false);
      }
    }
    // Everything fal received completed. How many submits a kill catches between their claim and
    // fal's answer is chance (three kills caught four in one CI run, failing a bound of three);
    // a worker holds at most FAL_CONCURRENCY of them.
    const completed = rows.filter((r) => r.status === 'COMPLETED');
    expect(completed).toHaveLength(sentPrompts.size);
    expect(rows.length - completed.length).toBeLessThanOrEqual(3 * 10);
  });

  it('SIGTERM: a worker stops within 10 s, hands its jobs over, and nothing is lost', { timeout: 120_000 }, async () => {
    p = await startPipeline({
      emulator: { latencyMs: 1500 },
      env: { FAL_CONCURRENCY: '10', WORKER_CONCURRENCY: '20' },
      childWorkers: 2,
    });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(30) });
    await until(async () => (await completedCount(p!, batch!.id)) >= 5, { timeoutMs: 30_000, what: 'the batch under way' });
    const leaving = p.children[0]!;
    const asked = Date.now();
    leaving.process.kill('SIGTERM');
    const exit = await leaving.exited;
    expect(Date.now() - asked).toBeLessThan(10_000);
    expect(exit.code).toBe(0);
    expect(leaving.output()).toMatch(/generation worker stopped/);

    const rows = await p.settled(batch!.id, 90_000);
    expect(rows.filter((r) => r.status === 'COMPLETED')).toHaveLength(30);
    expect(p.emulator.counters()).toMatchObject({ duplicateInputs: 0, submitted: 30 });
  });

  it('a Redis FLUSHALL mid-batch loses nothing: the reconciler rebuilds the jobs from PostgreSQL', { timeout: 120_000 }, async () => {
    const redis = await startPrivateRedis(await freePort());
    cleanup.push(() => redis.stop());
    p = await startPipeline({
      emulator: { latencyMs: 1000 },
      env: { REDIS_URL: redis.url, FAL_CONCURRENCY: '10', WORKER_CONCURRENCY: '20' },
      childWorkers: 2,
    });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(40) });
    await until(async () => (await completedCount(p!, batch!.id)) >= 8, { timeoutMs: 30_000, what: 'the batch under way' });
    const admin = new Redis(redis.url);
    await admin.flushall();
    admin.disconnect();

    const rows = await p.settled(batch!.id, 90_000);
    expect(rows.filter((r) => r.status === 'COMPLETED')).toHaveLength(40);
    const c = p.emulator.counters();
    expect(c.duplicateInputs).toBe(0);
    expect(c.submitted).toBe(40);
  });

  it('kill -9 while a finished video is being copied: another worker copies it; fal is not paid again', { timeout: 90_000 }, async () => {
    // A copy may take up to MEDIA_FETCH_TIMEOUT_MS: after that (and 5 s), the reconciler queues it anew.
    p = await startPipeline({ emulator: { latencyMs: 100 }, env: { MEDIA_FETCH_TIMEOUT_MS: '5000' }, childWorkers: 1 });
    const account = await p.account();
    // The first downloads fail (retried with backoff): seconds in which the copy is under way.
    p.emulator.inject({ on: 'file', status: 503, times: 3 });
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(1) });
    await until(
      async () => (await p!.app.segue.db.transition.count({ where: { batchId: batch!.id, status: 'IN_PROGRESS', falVideoUrl: { not: null } } })) === 1,
      { timeoutMs: 20_000, intervalMs: 20, what: 'the result known, the copy under way' },
    );
    const victim = p.children[0]!;
    const killedAt = Date.now();
    victim.process.kill('SIGKILL');
    await victim.exited;
    await p.startChildWorker();

    const [row] = await p.settled(batch!.id, 60_000);
    expect(row).toMatchObject({ status: 'COMPLETED', attempts: 1 });
    // Copied by the worker that took over (the reconciler's copy job), not by the one killed.
    expect(row!.completedAt!.getTime()).toBeGreaterThan(killedAt);
    expect((await fetch(row!.videoUrl!)).status).toBe(200);
    expect(p.emulator.counters()).toMatchObject({ submitted: 1, duplicateInputs: 0 });
  });
});
