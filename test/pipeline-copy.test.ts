import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { transitionInput, transitionInputs } from './helpers/fixtures.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';

let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({ emulator: { latencyMs: 100 }, env: { FAL_CONCURRENCY: '1' }, inlineWorkers: 1 });
});
afterAll(() => p?.close());

describe('copying finished videos into storage', () => {
  it('frees the fal slot when fal is done: the next submit does not wait for the copy', { timeout: 60_000 }, async () => {
    p.emulator.reset();
    const account = await p.account();
    // The first copy meets 503s (retried, ~1 s or more), long after fal finished the request.
    p.emulator.inject({ on: 'file', status: 503, times: 3 });
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(2) });
    const rows = await p.settled(batch!.id);
    expect(rows.map((r) => r.status)).toEqual(['COMPLETED', 'COMPLETED']);
    const [first, second] = [...rows].sort((a, b) => a.submittedAt!.getTime() - b.submittedAt!.getTime());
    // FAL_CONCURRENCY 1: the second request went to fal while the first was still being copied.
    const secondAtFal = p.emulator.requests().find((r) => r.requestId === second!.falRequestId)!;
    expect(secondAtFal.submittedAt).toBeLessThan(first!.completedAt!.getTime());
    expect(p.emulator.counters()).toMatchObject({ submitted: 2, maxInFlight: 1, duplicateInputs: 0 });
  });

  it('a failed copy of the video is tried again from fal\'s URL, never by generating again', { timeout: 60_000 }, async () => {
    p.emulator.reset();
    const account = await p.account();
    // More 503s than one copy attempt's own download retries: the copy job itself runs again.
    p.emulator.inject({ on: 'file', status: 503, times: 5 });
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
    const [row] = await p.settled(batch!.id);
    expect(row).toMatchObject({ status: 'COMPLETED', attempts: 1, errorCode: null });
    expect(p.emulator.counters().submitted).toBe(1);
    const copy = await fetch(row!.videoUrl!);
    expect(copy.status).toBe(200);
    expect(Buffer.from(await copy.arrayBuffer()).equals(Buffer.from(await (await fetch(row!.falVideoUrl!)).arrayBuffer()))).toBe(true);
  });

  it('a video that cannot be copied fails MEDIA_COPY_FAILED at once, keeping fal\'s URL; fal is not paid again', async () => {
    p.emulator.reset();
    const account = await p.account();
    p.emulator.inject({ on: 'file', status: 404, times: 1 });
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
    const [row] = await p.settled(batch!.id, 20_000);
    expect(row).toMatchObject({ status: 'FAILED', errorCode: 'MEDIA_COPY_FAILED', attempts: 1, videoUrl: null });
    expect(row!.errorMessage).toMatch(/answered 404/);
    expect(row!.falVideoUrl).toMatch(/\/files\/.+\/output\.mp4$/);
    expect(p.emulator.counters().submitted).toBe(1);
    expect(p.emulator.counters().duplicateInputs).toBe(0);
  });
});
