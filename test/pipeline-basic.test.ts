import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idOf } from '../src/graphql/ids.ts';
import { gql } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions, GetBatch } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({ emulator: { latencyMs: 200 }, inlineWorkers: 1, env: { FAL_CONCURRENCY: '3' } });
});
afterAll(() => p?.close());

describe('generation pipeline', () => {
  it('turns a generated batch into videos through the fal queue', async () => {
    const account = await p.account();
    const res = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: transitionInputs(6, { durationSeconds: 10 }), generate: true },
    });
    expect(res.errors).toBeUndefined();
    const batchId = res.data!.createTransitions.batch!.id;
    const rows = await p.settled(idOf('Batch', batchId));
    expect(rows.map((r) => r.status)).toEqual(Array(6).fill('COMPLETED'));
    for (const row of rows) {
      expect(row.videoUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/files\/.+\/output\.mp4$/);
      expect(row.falRequestId).toBeTruthy();
      expect(row.attempts).toBe(1);
      expect(row.startedAt).not.toBeNull();
      expect(row.completedAt!.getTime()).toBeGreaterThanOrEqual(row.startedAt!.getTime());
    }
    // The batch closes in the coalesced pass that follows its last item (within ~100 ms).
    const batch = await until(async () => {
      const res = await gql(p.app.graphqlUrl, account.apiKey, GetBatch, { id: batchId });
      return res.data!.batch.completedAt ? res.data!.batch : null;
    }, { what: 'the batch to close' });
    expect(batch).toMatchObject({ status: 'COMPLETED', total: 6, completed: 6 });
    const c = p.emulator.counters();
    expect(c.submitted).toBe(6);
    expect(c.maxInFlight).toBeLessThanOrEqual(3);
    expect(c.duplicateInputs).toBe(0);
    const inputs = p.emulator.requests().map((r) => r.input as Record<string, unknown>);
    expect(inputs[0]).toMatchObject({ duration: '10', image_url: expect.stringMatching(/front/), tail_image_url: expect.stringMatching(/tail/) });
  });
});
