import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cancelTransition, createAndGenerate, retryTransition } from '../src/domain/generation.ts';
import { transitionInput } from './helpers/fixtures.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

/**
 * A transition retried while its previous run's submit is still on its way: the old request is
 * recorded when its answer comes (it may be billed), canceled at fal and followed to its end, never
 * adopted by the new run, and the new run submits only once the old request has ended. Webhook
 * tokens name transition, run and attempt, so the old run's callback changes nothing.
 */
let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({ emulator: { latencyMs: 3_000 }, webhooks: true, inlineWorkers: 1 });
});
afterAll(() => p?.close());

const row = (id: string) => p.app.segue.db.transition.findUniqueOrThrow({ where: { id } });

async function cancelAndRetryDuringSubmit(answerDelayMs: number) {
  const account = await p.account();
  p.emulator.inject({ on: 'submit', delayMs: answerDelayMs, times: 1 });
  const { transitions } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
  const id = transitions[0]!.id;
  // The claim is in, the submit on its way (fal has the job; its answer is late).
  await until(async () => p.emulator.requests().length === 1 && (await row(id)).status === 'SUBMITTED', { what: 'the submit in flight' });
  expect((await row(id)).falRequestId).toBeNull();
  const [old] = p.emulator.requests();
  await cancelTransition(p.app.segue, account.id, id);
  await retryTransition(p.app.segue, account.id, id);
  const done = await until(async () => {
    const r = await row(id);
    return r.status === 'COMPLETED' && r.posterUrl ? r : null;
  }, { timeoutMs: 30_000, what: 'the new run to complete' });
  return { account, id, old: old!, done };
}

describe('a retry while the previous run’s submit is in flight', () => {
  it('records and cancels the old request, never adopts it, and completes the new run with its own', { timeout: 60_000 }, async () => {
    p.emulator.reset();
    const { id, old, done } = await cancelAndRetryDuringSubmit(1_500);

    expect(done).toMatchObject({ run: 2, attempts: 1 });
    const requests = p.emulator.requests();
    expect(requests).toHaveLength(2);
    const fresh = requests.find((r) => r.requestId !== old.requestId)!;
    expect(done.falRequestId).toBe(fresh.requestId);
    // The new request went to fal only once the old one had ended there.
    expect(fresh.submittedAt).toBeGreaterThanOrEqual(p.emulator.requests().find((r) => r.requestId === old.requestId)!.completedAt!);
    expect(p.emulator.counters().cancelCalls).toBeGreaterThanOrEqual(1);

    const ledger = await p.app.segue.db.falRequest.findMany({ where: { transitionId: id }, orderBy: { run: 'asc' } });
    expect(ledger.map((f) => ({ run: f.run, requestId: f.requestId, state: f.state }))).toEqual([
      { run: 1, requestId: old.requestId, state: 'ENDED' },
      { run: 2, requestId: fresh.requestId, state: 'ENDED' },
    ]);
    expect(ledger[0]!.cancelReason).toBe('SUPERSEDED');

    // fal ran the old request to its end (Kling does) and called back with the old run's token.
    await until(() => p.emulator.counters().webhooksDelivered >= 2, { what: 'both callbacks' });
    const before = await row(id);
    expect(await p.emulator.redeliverWebhook(old.requestId)).toBe(200);
    const after = await row(id);
    expect(after).toEqual(before);
  });

  it("the old run's callback arriving before its submit answer only records the request", { timeout: 60_000 }, async () => {
    p.emulator.reset();
    p.emulator.configure({ latencyMs: 300 });
    try {
      const { id, old, done } = await cancelAndRetryDuringSubmit(2_000);
      expect(done).toMatchObject({ run: 2, attempts: 1 });
      expect(done.falRequestId).not.toBe(old.requestId);
      const ledger = await p.app.segue.db.falRequest.findMany({ where: { transitionId: id }, orderBy: { run: 'asc' } });
      expect(ledger.map((f) => [f.run, f.requestId === old.requestId, f.state])).toEqual([
        [1, true, 'ENDED'],
        [2, false, 'ENDED'],
      ]);
      expect(p.emulator.counters()).toMatchObject({ submitted: 2 });
    } finally {
      p.emulator.configure({ latencyMs: 3_000 });
    }
  });
});
