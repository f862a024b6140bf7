import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';

/**
 * A submit goes out once. An answer that may hide a job fal took (a body cut short, a gateway
 * status fal does not document) is uncertain, never re-sent by the client or by Segue; only what
 * surely says "not taken" (4xx, 429, 500, 503) is retried.
 */
let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({ emulator: { latencyMs: 100 }, inlineWorkers: 1 });
});
afterAll(() => p?.close());

describe('a submit whose answer may hide a job fal took', () => {
  it.each([
    ['its answer is cut off mid-body', { on: 'submit', cutBody: true } as const, 1],
    ['a Cloudflare 524', { on: 'submit', status: 524 } as const, 0],
    ['a 502 from the gateway', { on: 'submit', status: 502 } as const, 0],
  ])('%s: sent once, never again; without webhooks it ends FAL_SUBMIT_UNCERTAIN', { timeout: 30_000 }, async (_what, fault, jobs) => {
    p.emulator.reset();
    p.emulator.inject(fault);
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(1) });
    const [row] = await p.settled(batch!.id, 20_000);
    expect(row).toMatchObject({ status: 'FAILED', errorCode: 'FAL_SUBMIT_UNCERTAIN', attempts: 1 });
    // The client did not re-send it either: fal saw (at most) the one submit.
    expect(p.emulator.counters()).toMatchObject({ submitted: jobs, duplicateInputs: 0 });
    const [ledger] = await p.app.segue.db.falRequest.findMany({ where: { transitionId: row!.id } });
    expect(ledger).toMatchObject({ state: 'UNCERTAIN', requestId: null });
  });

  it('a 503 surely refused: the ledger says REFUSED (nothing to pay) and the next attempt completes', { timeout: 30_000 }, async () => {
    p.emulator.reset();
    p.emulator.inject({ on: 'submit', status: 503 });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(1) });
    const [row] = await p.settled(batch!.id, 20_000);
    expect(row).toMatchObject({ status: 'COMPLETED', attempts: 2 });
    const ledger = await p.app.segue.db.falRequest.findMany({ where: { transitionId: row!.id }, orderBy: { attempt: 'asc' } });
    expect(ledger.map((f) => f.state)).toEqual(['REFUSED', 'ENDED']);
    expect(p.emulator.counters()).toMatchObject({ submitted: 1, rejectedSubmits: 1 });
  });
});
