import { describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { meetAtRow } from './helpers/held-transaction.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

/**
 * A pipeline whose fal will not give a finished request's result (its result endpoint answers
 * 500) and holds its webhook back for the test to send: with webhooks on, the run reads once
 * FAL_WEBHOOK_WAIT_MS after fal's end, and gives up at once (its next read, 60 s away, is past
 * FAL_RESULT_TIMEOUT_MS).
 */
async function unreadableResults(webhookWaitMs: number, latencyMs: number) {
  const p = await startPipeline({
    emulator: { latencyMs },
    webhooks: true,
    env: {
      FAL_WEBHOOK_WAIT_MS: String(webhookWaitMs),
      FAL_RESULT_TIMEOUT_MS: '1000',
      FAL_POLL_INTERVAL_MS: '60000',
      FAL_POLL_MAX_INTERVAL_MS: '60000',
      RECONCILE_INTERVAL_MS: '600000',
    },
    inlineWorkers: 1,
  });
  p.emulator.inject({ on: 'result', status: 500, times: 5 });
  p.emulator.inject({ on: 'webhook', delayMs: 60_000, times: 1 });
  return p;
}

/** One transition generated; its batch id. */
async function generateOne(p: Pipeline): Promise<string> {
  const account = await p.account();
  const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(1) });
  return batch!.id;
}

/** The batch's one transition, once fal runs it. */
const inProgress = (p: Pipeline, batchId: string) =>
  until(() => p.app.segue.db.transition.findFirst({ where: { batchId, status: 'IN_PROGRESS' } }), { what: 'IN_PROGRESS' });

/**
 * A request fal has finished is never paid again: a failed read of its result is only the read's
 * failure, tried again (backing off, spending no attempt), never a reason to submit anew.
 */
describe("a finished request's result", () => {
  it('with 30% of result reads answering 5xx, every transition completes with exactly one submission', { timeout: 90_000 }, async () => {
    const p = await startPipeline({ emulator: { latencyMs: 100 }, env: { FAL_CONCURRENCY: '10' }, inlineWorkers: 1 });
    try {
      p.emulator.inject({ on: 'result', status: 500, rate: 0.3 });
      p.emulator.inject({ on: 'result', status: 503, rate: 0.05 });
      const account = await p.account();
      const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(20) });
      const rows = await p.settled(batch!.id, 60_000);
      expect(rows.filter((r) => r.status === 'COMPLETED')).toHaveLength(20);
      expect(rows.every((r) => r.attempts === 1)).toBe(true);
      const c = p.emulator.counters();
      expect(c).toMatchObject({ submitted: 20, duplicateInputs: 0 });
      // The faults did fire: more result reads than results.
      expect(c.resultCalls).toBeGreaterThan(20);
      expect(await p.app.segue.db.falRequest.count({ where: { accountId: account.id, state: 'ENDED', outcome: 'OK' } })).toBe(20);
    } finally {
      await p.close();
    }
  });

  it("5xx answers carrying the request's own id, and 200s without an output, while fal's status says the job succeeded: only the reads failed; one submission each", { timeout: 60_000 }, async () => {
    const p = await startPipeline({ emulator: { latencyMs: 100 }, inlineWorkers: 1 });
    try {
      p.emulator.inject({ on: 'result', status: 500, withRequestId: true, rate: 0.4 });
      p.emulator.inject({ on: 'result', malformed: true, rate: 0.2 });
      const account = await p.account();
      const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(10) });
      const rows = await p.settled(batch!.id, 45_000);
      expect(rows.every((r) => r.status === 'COMPLETED' && r.attempts === 1)).toBe(true);
      expect(p.emulator.counters()).toMatchObject({ submitted: 10, duplicateInputs: 0 });
    } finally {
      await p.close();
    }
  });

  it("a job error fal reports for the request itself (the same answer twice) ends the attempt, and the retry submits anew", { timeout: 60_000 }, async () => {
    const p = await startPipeline({ emulator: { latencyMs: 100 }, inlineWorkers: 1 });
    try {
      const account = await p.account();
      const [input] = transitionInputs(1);
      p.emulator.inject({ on: 'job', error: 'server', times: 1, promptIncludes: input!.prompt });
      const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [input] });
      const [row] = await p.settled(batch!.id, 30_000);
      expect(row).toMatchObject({ status: 'COMPLETED', attempts: 2 });
      const ledger = await p.app.segue.db.falRequest.findMany({ where: { transitionId: row!.id }, orderBy: { attempt: 'asc' } });
      expect(ledger.map((f) => [f.attempt, f.state, f.outcome])).toEqual([
        [1, 'ENDED', 'ERROR'],
        [2, 'ENDED', 'OK'],
      ]);
    } finally {
      await p.close();
    }
  });
  it('a read fal rate-limits waits for its Retry-After before reading again, and still reads once the wait is over', { timeout: 60_000 }, async () => {
    const p = await startPipeline({ emulator: { latencyMs: 100 }, inlineWorkers: 1 });
    try {
      p.emulator.inject({ on: 'result', status: 429, retryAfterSec: 2, times: 1 });
      const account = await p.account();
      const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(1) });
      const [row] = await p.settled(batch!.id, 30_000);
      expect(row).toMatchObject({ status: 'COMPLETED', attempts: 1 });
      const [fal] = p.emulator.requests();
      expect(row!.completedAt!.getTime() - fal!.completedAt!).toBeGreaterThanOrEqual(2_000);
      expect(p.emulator.counters()).toMatchObject({ submitted: 1, resultCalls: 2 });
    } finally {
      await p.close();
    }
  });

  it('a Retry-After longer than FAL_RESULT_TIMEOUT_MS is waited only until that bound: the run ends FAILED FAL_RESULT_UNAVAILABLE in time, paid once', { timeout: 60_000 }, async () => {
    const p = await startPipeline({ emulator: { latencyMs: 100 }, env: { FAL_RESULT_TIMEOUT_MS: '1500' }, inlineWorkers: 1 });
    try {
      p.emulator.inject({ on: 'result', status: 429, retryAfterSec: 3600, times: Infinity });
      const account = await p.account();
      const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(1) });
      const [row] = await p.settled(batch!.id, 20_000);
      expect(row).toMatchObject({ status: 'FAILED', errorCode: 'FAL_RESULT_UNAVAILABLE', attempts: 1 });
      const [fal] = p.emulator.requests();
      expect(row!.completedAt!.getTime() - fal!.completedAt!).toBeLessThan(5_000);
      // A first read, and a last one at the bound.
      expect(p.emulator.counters().resultCalls).toBeGreaterThanOrEqual(2);
      expect(p.emulator.counters()).toMatchObject({ submitted: 1, duplicateInputs: 0 });
    } finally {
      await p.close();
    }
  });

  it('a video whose webhook is being recorded as the run gives up reading its result wins: the give-up changes nothing, and the run stores the video', { timeout: 60_000 }, async () => {
    const p = await unreadableResults(3_000, 1_000);
    try {
      const batchId = await generateOne(p);
      const db = p.app.segue.db;
      const running = await inProgress(p, batchId);
      const requestId = running.falRequestId!;
      let delivered: Promise<number> | undefined;
      const [row] = await meetAtRow(p.app.segue.config.databaseUrl, running.id, 'webhook', async () => {
        // The worker's wait has begun (the ledger noted fal's end): now the webhook comes.
        await until(() => db.falRequest.findFirst({ where: { requestId, state: 'ENDED' } }), { what: 'the wait for the webhook' });
        delivered = p.emulator.redeliverWebhook(requestId);
        return p.settled(batchId, 40_000);
      });
      expect(row).toMatchObject({ status: 'COMPLETED', errorCode: null, attempts: 1, falRequestId: requestId });
      expect(await delivered).toBe(200);
      expect(p.emulator.counters()).toMatchObject({ submitted: 1, duplicateInputs: 0, resultCalls: 1 });
      expect(await db.falRequest.findMany({ where: { transitionId: running.id } })).toMatchObject([{ state: 'ENDED', outcome: 'OK' }]);
    } finally {
      await p.close();
    }
  });

  it('a video whose webhook comes after the run ended FAL_RESULT_UNAVAILABLE is still the run\'s: the row takes it, its batch reopens, and both complete', { timeout: 60_000 }, async () => {
    const p = await unreadableResults(300, 300);
    try {
      const batchId = await generateOne(p);
      const [failed] = await p.settled(batchId, 30_000);
      expect(failed).toMatchObject({ status: 'FAILED', errorCode: 'FAL_RESULT_UNAVAILABLE', falVideoUrl: null });
      const db = p.app.segue.db;
      const closedAt = () => db.batch.findUniqueOrThrow({ where: { id: batchId } }).then((b) => b.completedAt);
      const firstClose = await until(closedAt, { what: 'the batch closed' });

      expect(await p.emulator.redeliverWebhook(failed!.falRequestId!)).toBe(200);
      const done = await until(async () => {
        const row = await db.transition.findUniqueOrThrow({ where: { id: failed!.id } });
        return row.status === 'COMPLETED' ? row : null;
      }, { what: 'the late video stored' });
      expect(done).toMatchObject({ errorCode: null, attempts: 1, run: failed!.run, falRequestId: failed!.falRequestId });
      expect(done.videoUrl).toMatch(/\/media\/transitions\//);
      // Reopened as the row took the video, and closed again by its completion.
      const secondClose = await until(closedAt, { what: 'the batch closed again' });
      expect(secondClose.getTime()).toBeGreaterThan(firstClose.getTime());
      expect(p.emulator.counters()).toMatchObject({ submitted: 1, duplicateInputs: 0 });
    } finally {
      await p.close();
    }
  });

  it('a video whose webhook waits behind the give-up on reading its result is still the run\'s: the webhook takes it once the FAILED has committed', { timeout: 60_000 }, async () => {
    const p = await unreadableResults(500, 1_000);
    try {
      const db = p.app.segue.db;
      const running = await inProgress(p, await generateOne(p));
      const requestId = running.falRequestId!;
      let delivered: Promise<number> | undefined;
      const completed = () => db.transition.findFirst({ where: { id: running.id, status: 'COMPLETED' } });
      // The give-up waits for the row first; then the webhook comes, and waits behind it.
      const row = await meetAtRow(
        p.app.segue.config.databaseUrl,
        running.id,
        'give-up',
        () => until(completed, { what: 'the video stored', timeoutMs: 30_000 }),
        () => void (delivered = p.emulator.redeliverWebhook(requestId)),
      );
      expect(row).toMatchObject({ errorCode: null, attempts: 1, run: running.run, falRequestId: requestId });
      expect(await delivered).toBe(200);
      expect(p.emulator.counters()).toMatchObject({ submitted: 1, duplicateInputs: 0, resultCalls: 1 });
      expect(await db.falRequest.findMany({ where: { transitionId: running.id } })).toMatchObject([{ state: 'ENDED', outcome: 'OK' }]);
    } finally {
      await p.close();
    }
  });
});
