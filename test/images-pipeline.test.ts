import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { idOf } from '../src/graphql/ids.ts';
import { gql } from './helpers/app.ts';
import { makeImage, startImageServer, type ImageServer } from './helpers/images.ts';
import { CreateTransitions } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { uploadImage } from './helpers/uploads.ts';

let p: Pipeline;
let images: ImageServer;

beforeAll(async () => {
  images = await startImageServer();
  // PUBLIC_URL is the API on 127.0.0.1 (webhooks on): Segue's own URLs are not public, so
  // images in its storage go to fal's storage (FAL_IMAGE_UPLOAD=auto). Two workers, two runtimes:
  // what one checked or uploaded, the other must not do again.
  p = await startPipeline({ webhooks: true, inlineWorkers: 2, env: { FAL_CONCURRENCY: '50' } });
});
afterAll(async () => {
  await p?.close();
  await images?.close();
});

const prompt = (what: string) => `${what} ${Math.random().toString(36).slice(2)}`;
const requestsFor = (prompts: string[]) => p.emulator.requests().filter((r) => prompts.includes((r.input as { prompt: string }).prompt));

describe('images fal can reach', () => {
  it('sends a transition made from two uploaded images to fal with fal-storage URLs, never a localhost URL', async () => {
    const account = await p.account();
    const front = (await uploadImage(p.app.graphqlUrl, account.apiKey, await makeImage({ width: 800, height: 600, color: '#aa3300' }))).data!.uploadImage;
    const tail = (await uploadImage(p.app.graphqlUrl, account.apiKey, await makeImage({ width: 800, height: 600, color: '#0033aa' }))).data!.uploadImage;
    const uploadsBefore = p.emulator.counters().uploads;
    const text = prompt('from uploads');
    const created = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { generate: true, transitions: [{ frontImageId: front.id, tailImageId: tail.id, prompt: text }] },
    });
    expect(created.errors).toBeUndefined();
    const [row] = await p.settled(idOf('Batch', created.data!.createTransitions.batch!.id));
    expect(row).toMatchObject({ status: 'COMPLETED' });

    expect(p.emulator.counters().uploads - uploadsBefore).toBe(2);
    const [request] = requestsFor([text]);
    const input = request!.input as { image_url: string; tail_image_url: string };
    for (const url of [input.image_url, input.tail_image_url]) {
      expect(url).toMatch(/^https:\/\/v3\.fal\.media\/files\//);
      expect(url).not.toMatch(/localhost|127\.0\.0\.1/);
    }
    expect(input.image_url).not.toBe(input.tail_image_url);
    // The fal copy is what was uploaded: the same pixels.
    const served = await fetch(input.image_url.replace('https://v3.fal.media', p.emulator.url));
    expect(served.headers.get('content-type')).toBe('image/png');
  });

  it("retries a run whose image fal's storage refused (an error, and a refusal before reading the bytes): it completes, submitted once", async () => {
    const account = await p.account();
    const front = (await uploadImage(p.app.graphqlUrl, account.apiKey, await makeImage({ width: 800, height: 600, color: '#226644' }))).data!.uploadImage;
    const tail = (await uploadImage(p.app.graphqlUrl, account.apiKey, await makeImage({ width: 800, height: 600, color: '#664422' }))).data!.uploadImage;
    const before = p.emulator.counters();
    p.emulator.inject({ on: 'upload', status: 503 });
    p.emulator.inject({ on: 'upload', status: 403, early: true });
    const text = prompt('storage refused');
    const created = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { generate: true, transitions: [{ frontImageId: front.id, tailImageId: tail.id, prompt: text }] },
    });
    expect(created.errors).toBeUndefined();
    const [row] = await p.settled(idOf('Batch', created.data!.createTransitions.batch!.id));
    expect(row).toMatchObject({ status: 'COMPLETED', errorCode: null });
    const after = p.emulator.counters();
    expect(after.uploadsRefused - before.uploadsRefused).toBe(2);
    expect(after.uploads - before.uploads).toBe(2);
    expect(requestsFor([text])).toHaveLength(1);
    expect(after.duplicateInputs).toBe(before.duplicateInputs);
  });

  it('uploads an image used by 10 transitions to fal once', async () => {
    const account = await p.account();
    const front = (await uploadImage(p.app.graphqlUrl, account.apiKey, await makeImage({ width: 640, height: 640 }))).data!.uploadImage;
    const tail = (await uploadImage(p.app.graphqlUrl, account.apiKey, await makeImage({ width: 640, height: 640, color: '#111111' }))).data!.uploadImage;
    const uploadsBefore = p.emulator.counters().uploads;
    const prompts = Array.from({ length: 10 }, (_, i) => prompt(`shared ${i}`));
    const created = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { generate: true, transitions: prompts.map((text) => ({ frontImageId: front.id, tailImageId: tail.id, prompt: text })) },
    });
    const rows = await p.settled(idOf('Batch', created.data!.createTransitions.batch!.id));
    expect(rows.map((r) => r.status)).toEqual(Array(10).fill('COMPLETED'));
    expect(p.emulator.counters().uploads - uploadsBefore).toBe(2);
    const fronts = new Set(requestsFor(prompts).map((r) => (r.input as { image_url: string }).image_url));
    expect(fronts.size).toBe(1);
  });
});

describe('checks before spending', () => {
  it('ends a transition whose image URL cannot be fetched FAILED with IMAGE_UNAVAILABLE, submitting nothing', async () => {
    const account = await p.account();
    const text = prompt('unreachable');
    const { batch } = await createAndGenerate(p.app.segue, account.id, {
      transitions: [{ frontImageUrl: 'http://127.0.0.1:1/gone.png', tailImageUrl: images.set('/ok-tail.png', await makeImage({})), prompt: text }],
    });
    const [row] = await p.settled(batch!.id);
    expect(row).toMatchObject({ status: 'FAILED', errorCode: 'IMAGE_UNAVAILABLE', falRequestId: null });
    expect(row!.errorMessage).toMatch(/front image.*could not be fetched/);
    expect(requestsFor([text])).toEqual([]);
  });

  it('ends a transition with a 200×200 PNG FAILED with IMAGE_INVALID naming the rule, submitting nothing', async () => {
    const account = await p.account();
    const text = prompt('too small');
    const { batch } = await createAndGenerate(p.app.segue, account.id, {
      transitions: [{ frontImageUrl: images.set('/ok-front.png', await makeImage({})), tailImageUrl: images.set('/small.png', await makeImage({ width: 200, height: 200 })), prompt: text }],
    });
    const [row] = await p.settled(batch!.id);
    expect(row).toMatchObject({ status: 'FAILED', errorCode: 'IMAGE_INVALID', falRequestId: null });
    expect(row!.errorMessage).toMatch(/tail image: IMAGE_TOO_SMALL: .*200×200/);
    expect(requestsFor([text])).toEqual([]);
  });

  it('fetches a URL once for a batch of 100 items that share it, across two workers', { timeout: 90_000 }, async () => {
    const account = await p.account();
    const front = images.set('/shared-front.png', await makeImage({ width: 500, height: 500 }));
    const tail = images.set('/shared-tail.jpg', await makeImage({ width: 500, height: 500, format: 'jpeg' }), 'image/jpeg');
    const prompts = Array.from({ length: 100 }, (_, i) => prompt(`hundred ${i}`));
    const { batch } = await createAndGenerate(p.app.segue, account.id, {
      transitions: prompts.map((text) => ({ frontImageUrl: front, tailImageUrl: tail, prompt: text })),
    });
    const rows = await p.settled(batch!.id, 80_000);
    expect(rows.filter((r) => r.status === 'COMPLETED')).toHaveLength(100);
    expect(images.hits('/shared-front.png')).toBe(1);
    expect(images.hits('/shared-tail.jpg')).toBe(1);
    // The tail image went to fal's storage once: every request carries the same fal URL.
    expect(new Set(requestsFor(prompts).map((r) => (r.input as { tail_image_url: string }).tail_image_url)).size).toBe(1);
  });
});
