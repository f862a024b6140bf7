import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { transitionInput, transitionInputs } from './helpers/fixtures.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({ emulator: { latencyMs: 400 }, env: { FAL_CONCURRENCY: '4', WORKER_CONCURRENCY: '20' }, inlineWorkers: 1 });
});
afterAll(() => p?.close());

/**
 * A new account's first run fetches, checks and uploads its images (once per account), which
 * delays its first submits by a moment that has nothing to do with slot order: each account
 * generates one video first, so the submits measured below follow the slots alone.
 */
async function withImagesReady(...accounts: Array<{ id: string }>) {
  await Promise.all(
    accounts.map(async (account) => {
      const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(1) });
      await p.settled(batch!.id);
    }),
  );
}

describe('fair share across accounts', () => {
  it("account A's 100 queued items delay account B's single item by at most one slot turnover", { timeout: 90_000 }, async () => {
    const [a, b] = [await p.account(), await p.account()];
    await withImagesReady(a, b);
    const aBatch = await createAndGenerate(p.app.segue, a.id, { transitions: transitionInputs(100) });
    await until(() => p.emulator.counters().submitted >= 2 + 6, { what: "A's batch under way" });

    const single = transitionInput({ prompt: `B's only video ${Date.now()}` });
    const enqueuedAt = Date.now();
    const bBatch = await createAndGenerate(p.app.segue, b.id, { transitions: [single] });
    const [bRow] = await p.settled(bBatch.batch!.id, 30_000);
    expect(bRow!.status).toBe('COMPLETED');

    const requests = p.emulator.requests();
    const bRequest = requests.find((r) => (r.input as { prompt: string }).prompt === single.prompt)!;
    const aStartedBetween = requests.filter(
      (r) => r !== bRequest && r.submittedAt >= enqueuedAt && r.submittedAt < bRequest.submittedAt,
    );
    // One turnover frees 4 slots; B must get one of them.
    expect(aStartedBetween.length).toBeLessThanOrEqual(4);
    // FIFO within A: A's items went out in the order they were given.
    const aPrompts = aBatch.transitions.map((t) => t.prompt);
    const aOrder = requests.map((r) => aPrompts.indexOf((r.input as { prompt: string }).prompt)).filter((i) => i >= 0);
    const inversions = aOrder.filter((v, i) => i > 0 && v < aOrder[i - 1]!).length;
    expect(inversions).toBeLessThanOrEqual(4); // only reorderings among submits racing in the same instant
    p.emulator.configure({ latencyMs: 20 });
    await p.settled(aBatch.batch!.id, 60_000);
  });

  it('two accounts with large batches share the slots round-robin', { timeout: 90_000 }, async () => {
    p.emulator.configure({ latencyMs: 150 });
    const [a, b] = [await p.account(), await p.account()];
    await withImagesReady(a, b);
    p.emulator.reset();
    const aBatch = await createAndGenerate(p.app.segue, a.id, { transitions: transitionInputs(30) });
    const bBatch = await createAndGenerate(p.app.segue, b.id, { transitions: transitionInputs(10) });
    await p.settled(bBatch.batch!.id, 60_000);
    const bPrompts = new Set(bBatch.transitions.map((t) => t.prompt));
    const order = p.emulator.requests().map((r) => (bPrompts.has((r.input as { prompt: string }).prompt) ? 'B' : 'A'));
    // B's 10 finish within the first ~20 + one turnover submits, not after A's 30.
    const lastB = order.lastIndexOf('B');
    expect(lastB).toBeLessThan(20 + 4);
    await p.settled(aBatch.batch!.id, 60_000);
  });
});
