import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';

/**
 * With webhooks, fal's callback ends a request in the ledger (in the statement that records its
 * result) and wakes the job tracking it. The worker's staged jobs wait for that slot: they must
 * take it then, not at their next recheck (a second later).
 */
let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({
    emulator: { latencyMs: 500 },
    webhooks: true,
    // No status stream and polling so slow that only the webhook tells the worker fal is done.
    env: { FAL_CONCURRENCY: '1', FAL_STATUS_MODE: 'poll', FAL_POLL_INTERVAL_MS: '60000', FAL_POLL_MAX_INTERVAL_MS: '60000' },
    inlineWorkers: 1,
  });
});
afterAll(() => p?.close());

describe('a slot freed by a webhook', () => {
  it('goes to the next staged job at once: each submit follows the webhook of the one before within 700 ms', { timeout: 60_000 }, async () => {
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(5) });
    const rows = await p.settled(batch!.id, 30_000);
    expect(rows.every((r) => r.status === 'COMPLETED' && r.attempts === 1)).toBe(true);
    const c = p.emulator.counters();
    expect(c).toMatchObject({ submitted: 5, maxInFlight: 1, duplicateInputs: 0, resultCalls: 0 });
    const requests = p.emulator.requests().sort((a, b) => a.submittedAt - b.submittedAt);
    // fal finished one, then the next went out: 25-70 ms here. Left to the recheck (every second),
    // at least one of the four took 850-1000 ms in every run.
    const handOvers = requests.slice(1).map((r, i) => r.submittedAt - requests[i]!.completedAt!);
    expect(handOvers.every((ms) => ms >= 0)).toBe(true);
    expect(Math.max(...handOvers), `hand-overs ${handOvers.join(', ')} ms`).toBeLessThan(700);
  });
});

describe('a failure fal reports by webhook', () => {
  it('is acted on at once, not at the next poll: the retry goes out within 3 s of it', { timeout: 90_000 }, async () => {
    const account = await p.account();
    const [input] = transitionInputs(1);
    p.emulator.inject({ on: 'job', error: 'server', times: 1, promptIncludes: input!.prompt });
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [input] });
    const [row] = await p.settled(batch!.id, 75_000);
    expect(row).toMatchObject({ status: 'COMPLETED', attempts: 2 });
    const [failed, retried] = p.emulator
      .requests()
      .filter((r) => (r.input as { prompt: string }).prompt === input!.prompt)
      .sort((a, b) => a.submittedAt - b.submittedAt);
    expect(failed).toMatchObject({ outcome: 'error' });
    // The webhook ended the request in the ledger; the run's job learns it at once and reads
    // fal's answer. Left to its next poll (60 s here, 15 s by default with webhooks), it waited
    // that long.
    const wait = retried!.submittedAt - failed!.completedAt!;
    expect(wait, `retry ${wait} ms after the failure`).toBeLessThan(3_000);
  });
});
