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

describe('fair share across accounts', () => {
  it("account A's 100 queued items delay account B's single item by at most one slot turnover", { timeout: 90_000 }, async () => {
    const [a, b] = [await p.account(), await p.account()];
    const aBatch = await createAndGenerate(p.app.segue, a.id, { transitions: transitionInputs(100) });
    await until(() => p.emulator.counters().submitted >= 6, { what: "A's batch under way" });

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
    const aOrder = requests.filter((r) => r !== bRequest).map((r) => aPrompts.indexOf((r.input as { prompt: string }).prompt));
    const inversions = aOrder.filter((v, i) => i > 0 && v < aOrder[i - 1]!).length;
    expect(inversions).toBeLessThanOrEqual(4); // only reorderings among submits racing in the same instant
    p.emulator.configure({ latencyMs: 20 });
    await p.settled(aBatch.batch!.id, 60_000);
  });

  it('two accounts with large batches share the slots round-robin', { timeout: 90_000 }, async () => {
    p.emulator.reset();
    p.emulator.configure({ latencyMs: 150 });
    const [a, b] = [await p.account(), await p.account()];
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
