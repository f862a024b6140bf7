import { describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { transitionInput } from './helpers/fixtures.ts';
import { startPipeline } from './helpers/pipeline.ts';

// A pipeline without webhooks, in a file of its own: its database is its workers' whole work list.
describe('a submit whose answer is lost, without webhooks', () => {
  it('is never sent again: without a callback it ends FAL_SUBMIT_UNCERTAIN and is counted', { timeout: 60_000 }, async () => {
    const q = await startPipeline({ emulator: { latencyMs: 100 }, inlineWorkers: 1 });
    try {
      const account = await q.account();
      q.emulator.inject({ on: 'submit', dropResponse: true, times: 1 });
      const { batch } = await createAndGenerate(q.app.segue, account.id, { transitions: [transitionInput()] });
      const [r] = await q.settled(batch!.id);
      expect(r).toMatchObject({ status: 'FAILED', errorCode: 'FAL_SUBMIT_UNCERTAIN', attempts: 1 });
      expect(q.emulator.counters()).toMatchObject({ submitted: 1, duplicateInputs: 0 });
      const metric = await q.inline[0]!.segue.metrics.registry.getSingleMetricAsString('segue_fal_uncertain_submits_total');
      expect(metric).toMatch(/segue_fal_uncertain_submits_total 1/);
    } finally {
      await q.close();
    }
  });
});
