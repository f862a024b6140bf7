import { afterEach, describe, expect, it } from 'vitest';
import { createAndGenerate, retryTransition } from '../src/domain/generation.ts';
import { generateBatch } from '../src/domain/transitions.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { meetAtRow } from './helpers/held-transaction.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

/**
 * fal keeps running (and billing) a request that is IN_PROGRESS when it is asked to cancel, so a
 * timeout must never lead to a second submit while the first may still run: the request is
 * canceled and followed until fal says it ended, and its video is used when it comes.
 */
let p: Pipeline | undefined;
afterEach(async () => {
  await p?.close();
  p = undefined;
});

const promptOf = (input: unknown) => (input as { prompt: string }).prompt;

describe('time limits at fal', () => {
  it('a request past FAL_TIMEOUT_MS that fal keeps running is submitted once and completes with its own video', { timeout: 60_000 }, async () => {
    p = await startPipeline({
      // fal does not honour a cancel of a running request (Kling runs to the end, billed).
      emulator: { latencyMs: 8_000, cancelRunning: 'complete' },
      env: { FAL_TIMEOUT_MS: '3000', FAL_CONCURRENCY: '4' },
      inlineWorkers: 1,
    });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(4) });
    const rows = await p.settled(batch!.id, 40_000);

    const c = p.emulator.counters();
    expect(c).toMatchObject({ submitted: 4, duplicateInputs: 0, succeeded: 4 });
    // Each was canceled at fal once it overran, and followed to its end anyway.
    expect(c.cancelCalls).toBeGreaterThanOrEqual(4);
    const requests = p.emulator.requests();
    for (const row of rows) {
      expect(row).toMatchObject({ status: 'COMPLETED', attempts: 1 });
      const request = requests.find((r) => r.requestId === row.falRequestId)!;
      expect(promptOf(request.input)).toBe(row.prompt);
      expect(row.falVideoUrl).toContain(request.requestId);
    }
    const ledger = await p.app.segue.db.falRequest.findMany({ where: { accountId: account.id } });
    expect(ledger).toHaveLength(4);
    expect(ledger.every((f) => f.state === 'ENDED' && f.outcome === 'OK' && f.cancelReason === 'FAL_TIMEOUT')).toBe(true);
  });

  it.each([
    ['without webhooks (the reconciler follows it; the first read of its result fails)', false],
    ['with webhooks (fal’s webhook brings it; the reconciler does not look)', true],
  ])('a request its run gave up on that fal runs to the end after all, %s: its video is taken, its batch reopens until the copy completes it, and no new run starts meanwhile', { timeout: 60_000 }, async (_how, webhooks) => {
    p = await startPipeline({
      // fal neither stops nor finishes within the grace: the run fails FAL_TIMEOUT, the ledger
      // keeps following the request, and its video comes 8 s in.
      emulator: { latencyMs: 8_000, cancelRunning: 'complete' },
      env: { FAL_TIMEOUT_MS: '1000', FAL_CANCEL_GRACE_MS: '500', RECONCILE_INTERVAL_MS: webhooks ? '600000' : '300' },
      inlineWorkers: 1,
      webhooks,
    });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(1) });
    const db = p.app.segue.db;
    // The item and its batch as one snapshot shows them.
    const read = async () => {
      const [both] = await db.$queryRaw<Array<{ id: string; status: string; errorCode: string | null; completedAt: Date | null; batchCompletedAt: Date | null }>>`
        SELECT t."id", t."status"::text, t."errorCode", t."completedAt", b."completedAt" AS "batchCompletedAt"
        FROM "Transition" t JOIN "Batch" b ON b."id" = t."batchId" WHERE t."batchId" = ${batch!.id}::uuid`;
      return both!;
    };
    const failed = await until(
      async () => {
        const now = await read();
        return now.status === 'FAILED' && now.batchCompletedAt ? now : null;
      },
      { timeoutMs: 20_000, what: 'the run to give up and its batch to close' },
    );
    expect(failed.errorCode).toBe('FAL_TIMEOUT');
    // A read of the late result that fails is only the read's: the request is followed on.
    if (!webhooks) p.emulator.inject({ on: 'result', malformed: true, times: 1 });
    // While fal may still deliver the video, a new run would pay again for it: refused.
    await expect(retryTransition(p.app.segue, account.id, failed.id)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringContaining('fal is still running') });
    await expect(generateBatch(p.app.segue, account.id, { transitionIds: [failed.id] })).rejects.toMatchObject({ code: 'CONFLICT' });

    // From the moment the late video is taken the batch is open; a query never shows it closed
    // over a running item.
    const seen: Array<{ status: string; closed: boolean }> = [];
    await until(
      async () => {
        const now = await read();
        if (now.status !== 'FAILED') seen.push({ status: now.status, closed: Boolean(now.batchCompletedAt) });
        return now.status === 'COMPLETED' && now.batchCompletedAt && now.batchCompletedAt >= now.completedAt! ? now : null;
      },
      { timeoutMs: 30_000, intervalMs: 20, what: 'the late video stored and the batch closed again after it' },
    );
    expect(seen.filter((s) => s.status === 'IN_PROGRESS' && s.closed)).toEqual([]);
    const row = await db.transition.findFirstOrThrow({ where: { batchId: batch!.id } });
    expect(row).toMatchObject({ status: 'COMPLETED', errorCode: null, attempts: 1 });
    expect(row.falVideoUrl).toContain(row.falRequestId!);
    expect(p.emulator.counters()).toMatchObject({ submitted: 1, duplicateInputs: 0, succeeded: 1 });
    const [ledger] = await db.falRequest.findMany({ where: { requestId: row.falRequestId! } });
    expect(ledger).toMatchObject({ state: 'ENDED', outcome: 'OK', cancelReason: 'FAL_TIMEOUT' });
    // Without webhooks, the failed read was tried again; with them, fal's webhook brought the video.
    if (webhooks) expect(p.emulator.counters().webhooksDelivered).toBe(1);
    else expect(p.emulator.counters().resultCalls).toBeGreaterThanOrEqual(2);
  });

  it('a video whose webhook is being recorded as the run gives up on its request wins: the give-up changes nothing, and the run stores the video', { timeout: 60_000 }, async () => {
    p = await startPipeline({
      // fal runs the request 2.5 s, ignoring the cancel asked at the queue limit (1 s); the run
      // would give up on it at 4 s. No status stream and no poll within the test: the run
      // learns of the video only from the webhook's change.
      emulator: { latencyMs: 2_500, cancelRunning: 'complete' },
      webhooks: true,
      env: {
        FAL_QUEUE_TIMEOUT_MS: '1000',
        FAL_CANCEL_GRACE_MS: '3000',
        FAL_STATUS_MODE: 'poll',
        FAL_POLL_INTERVAL_MS: '60000',
        FAL_POLL_MAX_INTERVAL_MS: '60000',
        RECONCILE_INTERVAL_MS: '600000',
      },
      inlineWorkers: 1,
    });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(1) });
    const db = p.app.segue.db;
    const submitted = await until(() => db.transition.findFirst({ where: { batchId: batch!.id, status: 'SUBMITTED', falRequestId: { not: null } } }), {
      what: 'the submit',
    });
    // fal's webhook comes 2.5 s in, the run's give-up 4 s in: they meet at the row.
    const [row] = await meetAtRow(p.app.segue.config.databaseUrl, submitted.id, 'webhook', () => p!.settled(batch!.id, 40_000));
    expect(row).toMatchObject({ status: 'COMPLETED', errorCode: null, attempts: 1, falRequestId: submitted.falRequestId });
    expect(row!.falVideoUrl).toContain(submitted.falRequestId!);
    expect(p.emulator.counters()).toMatchObject({ submitted: 1, duplicateInputs: 0, succeeded: 1 });
    const ledger = await db.falRequest.findMany({ where: { transitionId: submitted.id } });
    expect(ledger).toMatchObject([{ state: 'ENDED', outcome: 'OK', cancelReason: 'FAL_QUEUE_TIMEOUT' }]);
  });

  it('a request past FAL_TIMEOUT_MS that fal does stop fails FAL_TIMEOUT, and is not submitted again', { timeout: 60_000 }, async () => {
    p = await startPipeline({
      emulator: { latencyMs: 8_000, cancelRunning: 'stop' },
      env: { FAL_TIMEOUT_MS: '2000' },
      inlineWorkers: 1,
    });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(2) });
    const rows = await p.settled(batch!.id, 30_000);
    for (const row of rows) expect(row).toMatchObject({ status: 'FAILED', errorCode: 'FAL_TIMEOUT', attempts: 1 });
    expect(p.emulator.counters()).toMatchObject({ submitted: 2, canceled: 2, duplicateInputs: 0 });
  });

  it('a request fal finished in time is not canceled while its late webhook is awaited, though FAL_TIMEOUT_MS passes meanwhile', { timeout: 60_000 }, async () => {
    p = await startPipeline({
      emulator: { latencyMs: 1_000, cancelRunning: 'stop' },
      webhooks: true,
      env: { FAL_TIMEOUT_MS: '4000', FAL_WEBHOOK_WAIT_MS: '8000' },
      inlineWorkers: 1,
    });
    // The webhook comes after the wait: the result is read from fal once the wait is over.
    p.emulator.inject({ on: 'webhook', delayMs: 12_000, times: 1 });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(1) });
    const [row] = await p.settled(batch!.id, 30_000);
    expect(row).toMatchObject({ status: 'COMPLETED', attempts: 1 });
    const [request] = p.emulator.requests();
    // The limit passed during the wait (started + 4 s, before the wait's 8 s were over).
    expect(row!.completedAt!.getTime()).toBeGreaterThan(request!.startedAt! + 4_000);
    expect(p.emulator.counters()).toMatchObject({ submitted: 1, cancelCalls: 0, resultCalls: 1 });
    const ledger = await p.app.segue.db.falRequest.findMany({ where: { accountId: account.id } });
    expect(ledger).toMatchObject([{ state: 'ENDED', outcome: 'OK', cancelReason: null }]);
  });

  it('a request still waiting in fal’s queue past FAL_QUEUE_TIMEOUT_MS is canceled there and fails FAL_QUEUE_TIMEOUT; time queued is not run time', { timeout: 60_000 }, async () => {
    p = await startPipeline({
      // One runner at fal: the second request waits IN_QUEUE behind the first.
      emulator: { latencyMs: 4_000, capacity: 1 },
      env: { FAL_QUEUE_TIMEOUT_MS: '1500', FAL_TIMEOUT_MS: '6000', FAL_CONCURRENCY: '2' },
      inlineWorkers: 1,
    });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(2) });
    const rows = await p.settled(batch!.id, 30_000);
    const completed = rows.filter((r) => r.status === 'COMPLETED');
    const timedOut = rows.filter((r) => r.errorCode === 'FAL_QUEUE_TIMEOUT');
    expect(completed).toHaveLength(1);
    expect(timedOut).toHaveLength(1);
    expect(timedOut[0]).toMatchObject({ status: 'FAILED', attempts: 1 });
    // The queued one never ran at fal; the one that ran 4 s was within its 6 s run time.
    const queued = p.emulator.requests().find((r) => r.requestId === timedOut[0]!.falRequestId)!;
    expect(queued).toMatchObject({ outcome: 'canceled' });
    expect(queued.startedAt).toBeUndefined();
    expect(p.emulator.counters()).toMatchObject({ submitted: 2, duplicateInputs: 0 });
  });
});
