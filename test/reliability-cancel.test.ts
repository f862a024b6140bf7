import { afterEach, describe, expect, it } from 'vitest';
import { cancelTransition, createAndGenerate } from '../src/domain/generation.ts';
import { isAppError } from '../src/domain/errors.ts';
import { transitionInput, transitionInputs } from './helpers/fixtures.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

let p: Pipeline | undefined;
afterEach(async () => {
  await p?.close();
  p = undefined;
});

const row = (pipeline: Pipeline, id: string) => pipeline.app.segue.db.transition.findUniqueOrThrow({ where: { id } });

async function cancelError(pipeline: Pipeline, accountId: string, id: string) {
  try {
    await cancelTransition(pipeline.app.segue, accountId, id);
    return null;
  } catch (error) {
    return isAppError(error) ? error : null;
  }
}

describe('a cancel that comes after fal has finished', () => {
  it('while the finished video is being copied: CONFLICT "already generated", and the paid video is kept', { timeout: 60_000 }, async () => {
    p = await startPipeline({ emulator: { latencyMs: 100 }, inlineWorkers: 1 });
    const account = await p.account();
    // The first downloads of the video fail: the copy takes a few seconds, fal is done.
    p.emulator.inject({ on: 'file', status: 503, times: 3 });
    const { transitions } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
    const id = transitions[0]!.id;
    await until(async () => (await row(p!, id)).falVideoUrl, { intervalMs: 20, what: 'the result recorded' });
    const refused = await cancelError(p, account.id, id);
    expect(refused).toMatchObject({ code: 'CONFLICT' });
    expect(refused!.message).toMatch(/already generated/);
    const done = await until(async () => {
      const r = await row(p!, id);
      return r.status === 'COMPLETED' ? r : null;
    }, { what: 'completion' });
    expect(done.videoUrl).toMatch(/\/media\//);
    expect(p.emulator.counters()).toMatchObject({ submitted: 1 });
  });

  it('while its result cannot be read yet: CONFLICT, and the video arrives once the read works', { timeout: 60_000 }, async () => {
    p = await startPipeline({ emulator: { latencyMs: 100 }, inlineWorkers: 1 });
    const account = await p.account();
    p.emulator.inject({ on: 'result', status: 502, times: 40 });
    const { transitions } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
    const id = transitions[0]!.id;
    // fal has said COMPLETED: the request is over in the ledger, its result not read yet.
    await until(
      async () => (await p!.app.segue.db.falRequest.count({ where: { transitionId: id, state: 'ENDED', outcome: null } })) === 1,
      { intervalMs: 20, what: 'fal done, the result unread' },
    );
    expect(await cancelError(p, account.id, id)).toMatchObject({ code: 'CONFLICT' });
    p.emulator.clearFaults();
    const done = await until(async () => {
      const r = await row(p!, id);
      return r.status === 'COMPLETED' ? r : null;
    }, { timeoutMs: 30_000, what: 'completion' });
    expect(done).toMatchObject({ attempts: 1 });
    expect(p.emulator.counters()).toMatchObject({ submitted: 1 });
  });
});

describe('a submit whose answer was lost', () => {
  it('holds no fal slot while Segue waits for fal to name it: the next transition is submitted at once', { timeout: 60_000 }, async () => {
    p = await startPipeline({ emulator: { latencyMs: 1_500 }, webhooks: true, env: { FAL_CONCURRENCY: '1' }, inlineWorkers: 1 });
    const account = await p.account();
    p.emulator.inject({ on: 'submit', dropResponse: true, times: 1 });
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(2) });
    // The second request reaches fal while the first (whose answer was lost) still runs there.
    await until(() => p!.emulator.requests().length === 2, { timeoutMs: 10_000, what: 'the second submit' });
    const [first, second] = p.emulator.requests();
    expect(second!.submittedAt).toBeLessThan(first!.submittedAt + 1_500);
    const uncertain = await p.app.segue.db.falRequest.count({ where: { accountId: account.id, state: 'UNCERTAIN' } });
    expect(uncertain).toBe(1);
    // fal's webhook names the first: both complete, each submitted once.
    const rows = await p.settled(batch!.id, 30_000);
    expect(rows.every((r) => r.status === 'COMPLETED' && r.attempts === 1)).toBe(true);
    expect(p.emulator.counters()).toMatchObject({ submitted: 2, duplicateInputs: 0 });
  });
});
