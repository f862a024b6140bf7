import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import type { Transition } from '../src/generated/prisma/client.ts';
import type { FalRequestRecord } from '../tools/fal-emulator/index.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { startPipeline } from './helpers/pipeline.ts';
import { freePort } from './helpers/process.ts';
import { startPrivateRedis } from './helpers/services.ts';
import { until } from './helpers/wait.ts';

const CAP = 5;
const ROUNDS = 10;

/**
 * Paid once: for each transition, fal never saw a second request while an earlier one could
 * still run, and nothing after a request that produced the video. (A retry after a job fal
 * itself failed is a new, legitimate request.)
 */
function expectPaidOnce(rows: Transition[], requests: FalRequestRecord[]) {
  const byPrompt = new Map<string, FalRequestRecord[]>();
  for (const r of requests) {
    const prompt = (r.input as { prompt: string }).prompt;
    byPrompt.set(prompt, [...(byPrompt.get(prompt) ?? []), r]);
  }
  for (const row of rows) {
    const sent = (byPrompt.get(row.prompt) ?? []).sort((a, b) => a.submittedAt - b.submittedAt);
    for (let i = 0; i < sent.length - 1; i++) {
      const [earlier, later] = [sent[i]!, sent[i + 1]!];
      expect(earlier.outcome, `${row.id}: a request before the last one ended ${earlier.outcome}`).not.toBe('ok');
      expect(earlier.completedAt, `${row.id}: submitted again while a request ran`).toBeLessThanOrEqual(later.submittedAt);
    }
    if (row.status === 'COMPLETED') expect(sent.at(-1)!.requestId).toBe(row.falRequestId);
  }
}

describe('the FAL_CONCURRENCY cap outlives Redis', () => {
  it(`kill -9, Redis FLUSHALL and new workers mid-batch, through injected faults, ${ROUNDS} rounds: never more than FAL_CONCURRENCY in flight, nothing paid twice`, { timeout: 420_000 }, async () => {
    const redis = await startPrivateRedis(await freePort());
    const p = await startPipeline({
      emulator: { latencyMs: 400, latencyJitterMs: 200 },
      // A copy lost with its killed worker is queued again once a copy could have timed out (5 s here).
      env: { REDIS_URL: redis.url, FAL_CONCURRENCY: String(CAP), WORKER_CONCURRENCY: '20', FAL_MAX_RETRIES: '5', MEDIA_FETCH_TIMEOUT_MS: '5000' },
      childWorkers: 2,
    });
    const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      const account = await p.account();
      for (let round = 1; round <= ROUNDS; round++) {
        p.emulator.reset();
        p.emulator.inject({ on: 'result', status: 500, rate: 0.03 });
        p.emulator.inject({ on: 'status', status: 500, rate: 0.05 });
        p.emulator.inject({ on: 'submit', status: 503, rate: 0.05 });
        p.emulator.inject({ on: 'job', error: 'server', rate: 0.05 });
        p.emulator.inject({ on: 'file', status: 503, rate: 0.03 });
        const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(20) });
        await until(() => p.emulator.counters().submitted >= CAP, { timeoutMs: 30_000, what: `round ${round} under way` });
        await new Promise((r) => setTimeout(r, Math.random() * 1_000));
        const alive = p.children.filter((c) => c.process.exitCode === null && c.process.signalCode === null);
        const victim = alive[Math.floor(Math.random() * alive.length)]!;
        victim.process.kill('SIGKILL');
        await admin.flushall();
        await victim.exited;
        await p.startChildWorker();

        const rows = await p.settled(batch!.id, 120_000);
        const c = p.emulator.counters();
        expect(c.maxInFlight, `round ${round}`).toBeLessThanOrEqual(CAP);
        expectPaidOnce(rows, p.emulator.requests());
        // Every request fal accepted is in the ledger: by its id, or, when its worker was killed
        // before the answer came, as that attempt's uncertain submission (no id).
        const ledger = await p.app.segue.db.falRequest.findMany({ where: { transitionId: { in: rows.map((r) => r.id) } } });
        const ids = new Set(ledger.map((f) => f.requestId));
        const prompts = new Map(rows.map((r) => [r.prompt, r.id]));
        for (const request of p.emulator.requests()) {
          if (ids.has(request.requestId)) continue;
          const transitionId = prompts.get((request.input as { prompt: string }).prompt);
          const unknown = ledger.filter((f) => f.transitionId === transitionId && f.requestId === null && f.state === 'UNCERTAIN');
          expect(unknown.length, `round ${round}: ${request.requestId} is in no ledger row`).toBeGreaterThan(0);
        }
      }
    } finally {
      admin.disconnect();
      await p.close();
      await redis.stop();
    }
  });
});
