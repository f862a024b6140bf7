import { afterEach, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

let p: Pipeline | undefined;
afterEach(async () => {
  await p?.close();
  p = undefined;
});

describe('FAL_CONCURRENCY caps fal requests in flight across every worker process', () => {
  it.each([1, 3])(
    'a batch of 50 at 1 s latency with FAL_CONCURRENCY 10 completes with exactly 10 in flight at most, on %i worker process(es)',
    { timeout: 90_000 },
    async (workers) => {
      p = await startPipeline({
        emulator: { latencyMs: 1000 },
        env: { FAL_CONCURRENCY: '10', WORKER_CONCURRENCY: '50' },
        childWorkers: workers,
      });
      const account = await p.account();
      const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(50) });
      const started = Date.now();
      const rows = await p.settled(batch!.id, 60_000);
      const elapsed = Date.now() - started;

      expect(rows.filter((r) => r.status === 'COMPLETED')).toHaveLength(50);
      const c = p.emulator.counters();
      expect(c.maxInFlight).toBe(10);
      expect(c.submitted).toBe(50);
      expect(c.duplicateInputs).toBe(0);
      // 50 / 10 slots × 1 s is 5 s of fal time; the pipeline adds little on top.
      expect(elapsed).toBeGreaterThanOrEqual(5_000);
      // One slot at a time would take 50 s; a loaded CI machine may add several seconds.
      expect(elapsed).toBeLessThan(25_000);
      if (workers > 1) {
        // The work was shared: every process ran some of it.
        const logs = p.children.map((child) => (child.output().match(/submitted to fal/g) ?? []).length);
        expect(logs.every((n) => n > 0)).toBe(true);
        expect(logs.reduce((a, b) => a + b, 0)).toBe(50);
      }
    },
  );

  it('one worker process with FAL_CONCURRENCY 100 and WORKER_CONCURRENCY unset holds the 100 in flight and the 50 staged jobs beyond them', { timeout: 60_000 }, async () => {
    // WORKER_CONCURRENCY's default makes room for the staged jobs (half of FAL_CONCURRENCY): with
    // 100 (the old default) a single worker could never stage one, and each freed slot waited for
    // a queue round trip.
    p = await startPipeline({ emulator: { latencyMs: 30_000 }, env: { FAL_CONCURRENCY: '100' }, childWorkers: 1 });
    const account = await p.account();
    for (const size of [100, 60]) await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(size) });
    const depths = await until(async () => {
      const d = await p!.app.segue.generationJobs.depths();
      return p!.emulator.counters().inFlight === 100 && d.active === 150 ? d : null;
    }, { what: '100 requests in flight and 150 active jobs' });
    expect(depths.waiting).toBe(10);
    expect(p.emulator.counters().maxInFlight).toBe(100);
  });
});

