import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { gql, startTestApp } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CliQueueStats } from '../src/cli/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { metricsOf, sample } from './helpers/metrics.ts';
import { until } from './helpers/wait.ts';

// The CLI's own typed operation: the same public API any client uses.
const QueueStatsQuery = CliQueueStats;

let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({ emulator: { latencyMs: 200 }, env: { FAL_CONCURRENCY: '3', WORKER_CONCURRENCY: '7' }, apiWorker: true });
});
afterAll(() => p?.close());

describe('/health, /ready and /metrics', () => {
  it('/health answers while the process is up', async () => {
    const res = await fetch(`${p.app.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('/ready checks PostgreSQL and Redis', async () => {
    const res = await fetch(`${p.app.url}/ready`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ready', checks: { postgres: 'ok', redis: 'ok' } });
  });

  it('/ready answers 503 and names what is down, without driver messages (no host, port or user)', async () => {
    const broken = await startTestApp({ REDIS_URL: 'redis://127.0.0.1:1', DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/none' });
    try {
      const res = await fetch(`${broken.url}/ready`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { status: string; checks: Record<string, string> };
      expect(body).toEqual({ status: 'unavailable', checks: { postgres: 'down', redis: 'down' } });
    } finally {
      await broken.close();
    }
  });

  it('/metrics changes as a batch runs: finished transitions, fal calls and latency, jobs by state', async () => {
    const before = await metricsOf(p.app.url);
    expect(before).toMatch(/segue_fal_concurrency 3/);
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(5) });
    await p.settled(batch!.id);
    await gql(p.app.graphqlUrl, account.apiKey, QueueStatsQuery); // one GraphQL query to count
    const after = await metricsOf(p.app.url);
    const delta = (name: string, labels = '') => sample(after, name, labels) - sample(before, name, labels);
    expect(delta('segue_transitions_finished_total', 'status="COMPLETED"')).toBe(5);
    expect(delta('segue_fal_requests_total', 'operation="submit",outcome="ok"')).toBe(5);
    expect(delta('segue_fal_request_duration_seconds_count', 'operation="submit"')).toBe(5);
    expect(delta('segue_generation_duration_seconds_count')).toBe(5);
    expect(delta('segue_graphql_operation_duration_seconds_count', 'operation="query"')).toBeGreaterThanOrEqual(1);
    expect(delta('segue_http_request_duration_seconds_count', 'route="metrics",method="GET",status="2xx"')).toBe(1);
    expect(sample(after, 'segue_jobs', 'state="waiting"', true)).toBe(0);
    expect(sample(after, 'segue_fal_requests_in_flight', '', true)).toBe(0);
    expect(sample(after, 'segue_workers_online', '', true)).toBeGreaterThanOrEqual(1);
    expect(after).toMatch(/segue_subscriptions_open \d/);
    expect(after).toMatch(/segue_process_resident_memory_bytes/);
  });

  it("/metrics shows the PostgreSQL pool: busy and idle connections, what waits for one, and DATABASE_POOL_SIZE", { timeout: 30_000 }, async () => {
    const app = await startTestApp({ DATABASE_POOL_SIZE: '2' });
    const scrape = async () => {
      const text = await metricsOf(app.url);
      return {
        busy: sample(text, 'segue_db_pool_connections', 'state="busy"', true),
        idle: sample(text, 'segue_db_pool_connections', 'state="idle"', true),
        waiting: sample(text, 'segue_db_pool_waiting', '', true),
        max: sample(text, 'segue_db_pool_max', '', true),
      };
    };
    try {
      await app.segue.sql.query('SELECT 1', []);
      expect(await scrape()).toMatchObject({ busy: 0, waiting: 0, max: 2 });
      // Both connections held by slow statements, and one more statement behind them.
      const held = Array.from({ length: 3 }, () => app.segue.sql.query('SELECT pg_sleep(3)', []));
      const full = await until(async () => {
        const now = await scrape();
        return now.busy === 2 && now;
      }, { what: 'both connections busy' });
      expect(full).toMatchObject({ busy: 2, idle: 0, max: 2 });
      expect(full.waiting).toBeGreaterThanOrEqual(1);
      await Promise.all(held);
      await until(async () => {
        const now = await scrape();
        return now.waiting === 0 && now.busy === 0;
      }, { what: 'the pool free again' });
    } finally {
      await app.close();
    }
  });
});

describe('queueStats', () => {
  it("reports the caller's transitions by status, the queue, fal in flight against FAL_CONCURRENCY, and how many workers are online", async () => {
    const account = await p.account();
    p.emulator.configure({ latencyMs: 3000 });
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(5) });
    const stats = await until(async () => {
      const res = await gql(p.app.graphqlUrl, account.apiKey, QueueStatsQuery);
      const s = res.data!.queueStats;
      const running = s.byStatus.filter((b) => b.status === 'SUBMITTED' || b.status === 'IN_PROGRESS').reduce((n, b) => n + b.count, 0);
      return s.falInFlight === 3 && running === 3 ? s : null;
    }, { what: '3 requests in flight, 2 waiting' });
    expect(stats.falConcurrency).toBe(3);
    // The 2 others wait: in the queue, or staged (active jobs whose claims wait for a slot).
    expect(stats.queue.waiting + stats.queue.active).toBe(5);
    const byStatus = Object.fromEntries(stats.byStatus.map((s) => [s.status, s.count]));
    expect((byStatus.SUBMITTED ?? 0) + (byStatus.IN_PROGRESS ?? 0)).toBe(3);
    expect(byStatus.QUEUED).toBe(2);
    expect(stats.workersOnline).toBeGreaterThanOrEqual(1);
    p.emulator.configure({ latencyMs: 100 });
    await p.settled(batch!.id);
  });
});
