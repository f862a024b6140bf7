import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { codes, gql } from './helpers/app.ts';
import { transitionInput, transitionInputs } from './helpers/fixtures.ts';
import { CancelBatch, CancelTransition, CreateTransitions, GetBatch, RetryTransition } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({
    emulator: { latencyMs: 3000 },
    env: { FAL_CONCURRENCY: '4', FAL_MAX_RETRIES: '1', FAL_RETRY_DELAY_MS: '50' },
    inlineWorkers: 1,
  });
});
afterAll(() => p?.close());

const row = (id: string) => p.app.segue.db.transition.findUniqueOrThrow({ where: { id } });

describe('cancel', () => {
  it('cancelTransition during IN_PROGRESS cancels at fal and ends CANCELED', async () => {
    const account = await p.account();
    const { transitions } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
    const id = transitions[0]!.id;
    await until(async () => (await row(id)).status === 'IN_PROGRESS', { what: 'IN_PROGRESS' });
    const cancelsBefore = p.emulator.counters().cancelCalls;

    const res = await gql(p.app.graphqlUrl, account.apiKey, CancelTransition, { id: encodeId('Transition', id) });
    expect(res.errors).toBeUndefined();
    expect(res.data!.cancelTransition.status).toBe('CANCELED');
    expect(p.emulator.counters().cancelCalls).toBe(cancelsBefore + 1);
    const falRequest = p.emulator.requests().find((r) => r.requestId === res.data!.cancelTransition.falRequestId);
    expect(falRequest).toBeDefined();
    // The worker lets go of it at once: its fal slot is free again (nothing is in flight for us).
    await until(async () => (await p.app.segue.generationJobs.queue.getActiveCount()) === 0, { what: 'the job to let go' });
    await new Promise((r) => setTimeout(r, 3500)); // past the fal latency: the canceled row stays canceled
    expect(await row(id)).toMatchObject({ status: 'CANCELED', videoUrl: null });

    const again = await gql(p.app.graphqlUrl, account.apiKey, CancelTransition, { id: encodeId('Transition', id) });
    expect(codes(again)).toEqual(['CONFLICT']);
  });

  it('cancelBatch cancels queued and running items; the batch ends CANCELED', async () => {
    const account = await p.account();
    const res = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: transitionInputs(8), generate: true },
    });
    const batchId = res.data!.createTransitions.batch!.id;
    await until(async () => p.emulator.counters().inProgress > 0, { what: 'something running' });
    const canceled = await gql(p.app.graphqlUrl, account.apiKey, CancelBatch, { id: batchId });
    expect(canceled.errors).toBeUndefined();
    expect(canceled.data!.cancelBatch).toMatchObject({ status: 'CANCELED', canceled: 8, total: 8 });
    expect(canceled.data!.cancelBatch.completedAt).not.toBeNull();
    const again = await gql(p.app.graphqlUrl, account.apiKey, CancelBatch, { id: batchId });
    expect(codes(again)).toEqual(['CONFLICT']);
  });

  it("cannot cancel another account's transition (NOT_FOUND)", async () => {
    const [a, b] = [await p.account(), await p.account()];
    const { transitions } = await createAndGenerate(p.app.segue, a.id, { transitions: [transitionInput()] });
    const res = await gql(p.app.graphqlUrl, b.apiKey, CancelTransition, { id: encodeId('Transition', transitions[0]!.id) });
    expect(codes(res)).toEqual(['NOT_FOUND']);
    expect((await row(transitions[0]!.id)).status).not.toBe('CANCELED');
  });
});

describe('retry', () => {
  it('retryTransition brings a FAILED transition to COMPLETED, in its batch', { timeout: 60_000 }, async () => {
    p.emulator.configure({ latencyMs: 100 });
    const account = await p.account();
    const input = transitionInput({ prompt: `flaky ${Date.now()}` });
    p.emulator.inject({ on: 'job', error: 'server', times: 2, promptIncludes: input.prompt });
    const { transitions, batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [input] });
    const [failed] = await p.settled(batch!.id);
    expect(failed).toMatchObject({ status: 'FAILED', errorCode: 'FAL_JOB_ERROR', attempts: 2 });

    const res = await gql(p.app.graphqlUrl, account.apiKey, RetryTransition, { id: encodeId('Transition', transitions[0]!.id) });
    expect(res.errors).toBeUndefined();
    expect(res.data!.retryTransition).toMatchObject({ status: 'QUEUED', attempts: 0 });
    const [done] = await p.settled(batch!.id);
    expect(done).toMatchObject({ status: 'COMPLETED', run: 2, attempts: 1, errorCode: null });
    const b = await gql(p.app.graphqlUrl, account.apiKey, GetBatch, { id: encodeId('Batch', batch!.id) });
    expect(b.data!.batch).toMatchObject({ status: 'COMPLETED', completed: 1, failed: 0 });
  });

  it('retrying a transition that has not failed is a CONFLICT', async () => {
    const account = await p.account();
    const { transitions } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
    const res = await gql(p.app.graphqlUrl, account.apiKey, RetryTransition, { id: encodeId('Transition', transitions[0]!.id) });
    expect(codes(res)).toEqual(['CONFLICT']);
  });
});
