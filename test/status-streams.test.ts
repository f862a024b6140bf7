import { afterEach, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { TransitionUpdated } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { subscribe, wsClient } from './helpers/subscribe.ts';
import { until } from './helpers/wait.ts';

/**
 * Progress moves the moment fal moves, without webhooks: each request is followed on fal's status
 * stream, which is reopened when it drops, goes silent or closes early, and given up for polling
 * when it keeps failing.
 */
let p: Pipeline | undefined;
afterEach(async () => {
  await p?.close();
  p = undefined;
});

// Polling so slow that only the stream can be this quick.
const SLOW_POLLING = { FAL_POLL_INTERVAL_MS: '30000', FAL_POLL_MAX_INTERVAL_MS: '30000' };

/** One transition completes on its first attempt, and its request fell back to polling once (counted). */
async function completesWithOneFallback(p: Pipeline) {
  const account = await p.account();
  const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(1) });
  const [row] = await p.settled(batch!.id, 30_000);
  expect(row).toMatchObject({ status: 'COMPLETED', attempts: 1 });
  const metric = await p.inline[0]!.segue.metrics.registry.getSingleMetricAsString('segue_fal_status_stream_fallbacks_total');
  expect(metric).toMatch(/segue_fal_status_stream_fallbacks_total 1/);
}

describe('fal status streams', () => {
  it('without webhooks: COMPLETED within 250 ms of fal finishing, IN_PROGRESS seen within 250 ms of fal starting, queue positions pushed as they move', { timeout: 60_000 }, async () => {
    // One runner at fal, so requests wait in its queue and their positions move.
    p = await startPipeline({ emulator: { latencyMs: 1_000, capacity: 1 }, env: { ...SLOW_POLLING, FAL_CONCURRENCY: '4' } });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(4) });
    const ws = wsClient(p.app.url + '/graphql', account.apiKey);
    const seen: Array<{ id: string; status: string; queuePosition: number | null; at: number }> = [];
    const live = subscribe(ws, TransitionUpdated, { batchId: encodeId('Batch', batch!.id) }, (d) => {
      seen.push({ id: d.transitionUpdated.id, status: d.transitionUpdated.status, queuePosition: d.transitionUpdated.queuePosition, at: Date.now() });
      return d.transitionUpdated;
    });
    await until(() => seen.length >= 4, { what: 'the snapshot' });
    await p.startInlineWorker();
    const rows = await p.settled(batch!.id, 30_000);
    await until(() => seen.filter((e) => e.status === 'COMPLETED').length >= 4, { what: 'every COMPLETED event' });
    live.stop();
    await ws.dispose();

    expect(rows.every((r) => r.status === 'COMPLETED' && r.attempts === 1)).toBe(true);
    const requests = p.emulator.requests();
    const startedAt = (row: (typeof rows)[number]) => requests.find((r) => r.requestId === row.falRequestId)!.startedAt!;
    for (const row of rows) {
      const request = requests.find((r) => r.requestId === row.falRequestId)!;
      // In the database within 250 ms of fal: the result read, the video copied, the row COMPLETED.
      expect(row.completedAt!.getTime() - request.completedAt!).toBeLessThan(250);
      // A subscriber saw IN_PROGRESS within 250 ms of fal starting the job.
      const id = encodeId('Transition', row.id);
      const started = seen.find((e) => e.id === id && e.status === 'IN_PROGRESS');
      expect(started, `IN_PROGRESS of ${row.id}`).toBeDefined();
      expect(started!.at - request.startedAt!).toBeLessThan(250);
    }
    // The last in fal's queue (submits go out together, in no set order) saw its position fall,
    // one step at a time as each ahead started.
    const startedLast = rows.reduce((a, b) => (startedAt(b) > startedAt(a) ? b : a));
    const last = encodeId('Transition', startedLast.id);
    const positions = seen.filter((e) => e.id === last && e.queuePosition !== null).map((e) => e.queuePosition);
    expect(positions.length).toBeGreaterThanOrEqual(2);
    expect(positions).toEqual([...positions].sort((a, b) => b! - a!));
    expect(positions.at(-1)).toBe(0);
    // Streams, not polls: one stream per request, no status calls besides.
    const c = p.emulator.counters();
    expect(c.streamsOpened).toBe(4);
    expect(c.statusCalls).toBe(4);
  });

  it('streams cut mid-way, gone silent or closed before COMPLETED are reopened: every transition completes, each submitted once', { timeout: 60_000 }, async () => {
    p = await startPipeline({
      emulator: { latencyMs: 1_000, streamKeepAliveMs: 100 },
      env: { ...SLOW_POLLING, FAL_STREAM_IDLE_MS: '500' },
      inlineWorkers: 1,
    });
    p.emulator.inject({ on: 'stream', cut: true, afterEvents: 1, times: 2 });
    p.emulator.inject({ on: 'stream', silent: true, times: 2 });
    p.emulator.inject({ on: 'stream', closeEarly: true, afterEvents: 1, times: 2 });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(6) });
    const rows = await p.settled(batch!.id, 30_000);
    expect(rows.every((r) => r.status === 'COMPLETED' && r.attempts === 1)).toBe(true);
    const c = p.emulator.counters();
    expect(c).toMatchObject({ submitted: 6, duplicateInputs: 0 });
    // The six faulty streams were reopened: more streams than requests, and none left open.
    expect(c.streamsOpened).toBeGreaterThanOrEqual(6 + 6);
    await until(() => p!.emulator.counters().streamsOpen === 0, { what: 'every stream closed' });
  });

  it('a request whose streams keep failing is polled instead, and the fallback is counted', { timeout: 60_000 }, async () => {
    p = await startPipeline({
      emulator: { latencyMs: 2_000, streamKeepAliveMs: 100 },
      env: { FAL_STREAM_IDLE_MS: '300', FAL_POLL_INTERVAL_MS: '100', FAL_POLL_MAX_INTERVAL_MS: '200' },
      inlineWorkers: 1,
    });
    p.emulator.inject({ on: 'stream', silent: true, times: Infinity });
    await completesWithOneFallback(p);
    const c = p.emulator.counters();
    expect(c.streamsOpened).toBe(3);
    // Polled: status calls beyond the three streams.
    expect(c.statusCalls).toBeGreaterThan(3);
  });

  it('streams that keep closing right after repeating the known status count as failing: the request is polled, not reopened forever', { timeout: 60_000 }, async () => {
    p = await startPipeline({
      emulator: { latencyMs: 3_000 },
      env: { FAL_POLL_INTERVAL_MS: '100', FAL_POLL_MAX_INTERVAL_MS: '200' },
      inlineWorkers: 1,
    });
    p.emulator.inject({ on: 'stream', closeEarly: true, afterEvents: 1, times: Infinity });
    await completesWithOneFallback(p);
    // A few streams (the first brings news), then polling: not one stream every 100 ms for 3 s.
    expect(p.emulator.counters().streamsOpened).toBeLessThanOrEqual(5);
  });

  it("reuses its connections to fal: a stream read to COMPLETED and a finished video's download hand theirs to the next request", { timeout: 60_000 }, async () => {
    // One request at a time, so each one's connections are free again when the next one starts.
    p = await startPipeline({ emulator: { latencyMs: 200 }, env: { ...SLOW_POLLING, FAL_CONCURRENCY: '1' }, inlineWorkers: 1 });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(6) });
    const rows = await p.settled(batch!.id, 30_000);
    expect(rows.every((r) => r.status === 'COMPLETED')).toBe(true);
    const c = p.emulator.counters();
    expect(c.streamsOpened).toBeGreaterThanOrEqual(6);
    // A stream and a download per request were each a new connection (12 and more): now the
    // client's few pooled connections carry all of them.
    expect(c.connections).toBeLessThanOrEqual(6);
  });

  it('reuses its connections with webhooks too: a stream whose request a webhook ended first is let finish, not cut', { timeout: 60_000 }, async () => {
    // The streams lag 600 ms behind fal: each webhook arrives first, and the tracker is done with
    // its request before the stream has brought COMPLETED.
    p = await startPipeline({ emulator: { latencyMs: 200 }, env: { ...SLOW_POLLING, FAL_CONCURRENCY: '1' }, inlineWorkers: 1, webhooks: true });
    p.emulator.inject({ on: 'stream', lagMs: 600, times: Infinity });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(6) });
    const rows = await p.settled(batch!.id, 30_000);
    expect(rows.every((r) => r.status === 'COMPLETED' && r.attempts === 1)).toBe(true);
    const c = p.emulator.counters();
    expect(c.streamsOpened).toBeGreaterThanOrEqual(6);
    expect(c.webhooksDelivered).toBeGreaterThanOrEqual(6);
    // Each was read to its end rather than cut, and its connection carried a later request's.
    expect(c.streamsCut).toBe(0);
    expect(c.connections).toBeLessThanOrEqual(8);
  });

  it('a stream let finish is still cut when it does not: within 2 s of its video being stored, not left for its 20 s lag', { timeout: 60_000 }, async () => {
    p = await startPipeline({ emulator: { latencyMs: 200 }, env: { ...SLOW_POLLING, FAL_CONCURRENCY: '1' }, inlineWorkers: 1, webhooks: true });
    // The stream would bring COMPLETED 20 s after the webhook.
    p.emulator.inject({ on: 'stream', lagMs: 20_000, times: Infinity });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(1) });
    const [row] = await p.settled(batch!.id, 30_000);
    expect(row).toMatchObject({ status: 'COMPLETED', attempts: 1 });
    const storedAt = Date.now();
    await until(() => p!.emulator.counters().streamsOpen === 0, { what: 'the stream closed', timeoutMs: 10_000 });
    // Not the stream's own end (20 s of lag away).
    expect(Date.now() - storedAt).toBeLessThan(5_000);
    expect(p.emulator.counters()).toMatchObject({ streamsOpened: 1, streamsCut: 1 });
  });

  it('FAL_STATUS_MODE=poll follows requests by polling only', { timeout: 30_000 }, async () => {
    p = await startPipeline({ emulator: { latencyMs: 300 }, env: { FAL_STATUS_MODE: 'poll' }, inlineWorkers: 1 });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(2) });
    const rows = await p.settled(batch!.id, 20_000);
    expect(rows.every((r) => r.status === 'COMPLETED')).toBe(true);
    expect(p.emulator.counters().streamsOpened).toBe(0);
  });
});
