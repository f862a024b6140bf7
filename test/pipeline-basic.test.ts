import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateNow } from '../src/domain/generation.ts';
import { encodeId, idOf } from '../src/graphql/ids.ts';
import { gql } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions, GenerateBatch, GetBatch } from './helpers/operations.ts';
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
      // Segue's own copy, served by the API; fal's URL kept beside it.
      expect(row.videoUrl).toBe(`${p.app.url.replace('localhost', '127.0.0.1')}/media/transitions/${row.id}/r1-a1.mp4`);
      expect(row.falVideoUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/files\/.+\/output\.mp4$/);
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
    const copy = await fetch(rows[0]!.videoUrl!);
    expect(copy.status).toBe(200);
    expect(copy.headers.get('content-type')).toBe('video/mp4');
    // Frontends on other origins may load and draw Segue's media, as they could fal's URLs.
    expect(copy.headers.get('access-control-allow-origin')).toBe('*');
    const original = await fetch(rows[0]!.falVideoUrl!);
    expect(Buffer.from(await copy.arrayBuffer()).equals(Buffer.from(await original.arrayBuffer()))).toBe(true);
    // The poster (first frame, JPEG) follows on the media queue.
    const withPoster = await until(async () => {
      const row = await p.app.segue.db.transition.findUniqueOrThrow({ where: { id: rows[0]!.id } });
      return row.posterUrl ? row : null;
    }, { what: 'the poster' });
    const poster = await fetch(withPoster.posterUrl!);
    expect(poster.headers.get('content-type')).toBe('image/jpeg');
    expect(Buffer.from(await poster.arrayBuffer()).subarray(0, 2).toString('hex')).toBe('ffd8');
    const inputs = p.emulator.requests().map((r) => r.input as Record<string, unknown>);
    expect(inputs[0]).toMatchObject({ duration: '10', image_url: expect.stringMatching(/^https:\/\/v3\.fal\.media\//), tail_image_url: expect.stringMatching(/^https:\/\/v3\.fal\.media\//) });
  });

  it('generating a COMPLETED transition again makes a new video at fal, with its own copy and poster', { timeout: 60_000 }, async () => {
    const account = await p.account();
    const [first] = await generateNow(p.app.segue, account.id, { transitions: transitionInputs(1) }, { timeoutMs: 50_000, pollMs: 100 });
    const before = await until(async () => {
      const row = await p.app.segue.db.transition.findUniqueOrThrow({ where: { id: first!.id } });
      return row.posterUrl ? row : null;
    }, { what: 'the first poster' });
    const submitted = p.emulator.counters().submitted;

    const again = await gql(p.app.graphqlUrl, account.apiKey, GenerateBatch, { input: { transitionIds: [encodeId('Transition', first!.id)] } });
    expect(again.errors).toBeUndefined();
    const queued = await p.app.segue.db.transition.findUniqueOrThrow({ where: { id: first!.id } });
    // The new run starts from a clean slate: nothing of the old video shows while it generates.
    expect(['QUEUED', 'SUBMITTED', 'IN_PROGRESS']).toContain(queued.status);
    expect(queued).toMatchObject({ run: 2, videoUrl: null, falVideoUrl: null, videoKey: null, posterUrl: null });

    const [row] = await p.settled(idOf('Batch', again.data!.generateBatch.batch.id));
    expect(row!.status).toBe('COMPLETED');
    expect(p.emulator.counters().submitted).toBe(submitted + 1);
    expect(row!.falRequestId).not.toBe(before.falRequestId);
    expect(row!.falVideoUrl).not.toBe(before.falVideoUrl);
    expect(row!.videoUrl).toMatch(/\/r2-a1\.mp4$/);
    const poster = await until(async () => {
      const r = await p.app.segue.db.transition.findUniqueOrThrow({ where: { id: first!.id } });
      return r.posterUrl ? r.posterUrl : null;
    }, { what: 'the new poster' });
    expect(poster).not.toBe(before.posterUrl);
    expect((await fetch(poster)).status).toBe(200);
  });

  it('generateNow (for scripts) creates, generates and resolves with the finished rows', { timeout: 60_000 }, async () => {
    const account = await p.account();
    const rows = await generateNow(p.app.segue, account.id, { transitions: transitionInputs(2) }, { timeoutMs: 50_000, pollMs: 200 });
    expect(rows.map((r) => r.status)).toEqual(['COMPLETED', 'COMPLETED']);
    expect(rows.every((r) => r.videoUrl?.includes('/media/'))).toBe(true);
  });
});
