import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idOf } from '../src/graphql/ids.ts';
import { gql } from './helpers/app.ts';
import { makeImage } from './helpers/images.ts';
import { CreateTransitions } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { uploadImage } from './helpers/uploads.ts';

/**
 * FAL_IMAGE_UPLOAD=never: stored images are never copied to fal's storage; fal is given Segue's
 * own signed, time-limited URL (for a deployment whose storage fal can reach, or that must not
 * hand files to fal's storage).
 */
let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({ inlineWorkers: 1, env: { FAL_IMAGE_UPLOAD: 'never' } });
});
afterAll(() => p?.close());

describe('FAL_IMAGE_UPLOAD=never', () => {
  it("sends fal Segue's signed URLs of uploaded images and uploads nothing to fal's storage", async () => {
    const account = await p.account();
    const front = (await uploadImage(p.app.graphqlUrl, account.apiKey, await makeImage({ width: 800, height: 600, color: '#aa3300' }))).data!.uploadImage;
    const tail = (await uploadImage(p.app.graphqlUrl, account.apiKey, await makeImage({ width: 800, height: 600, color: '#0033aa' }))).data!.uploadImage;
    const created = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { generate: true, transitions: [{ frontImageId: front.id, tailImageId: tail.id, prompt: 'never uploaded' }] },
    });
    expect(created.errors).toBeUndefined();
    const [row] = await p.settled(idOf('Batch', created.data!.createTransitions.batch!.id));
    expect(row).toMatchObject({ status: 'COMPLETED' });
    expect(p.emulator.counters().uploads).toBe(0);
    const [request] = p.emulator.requests();
    const input = request!.input as { image_url: string; tail_image_url: string };
    for (const url of [input.image_url, input.tail_image_url]) {
      expect(url.startsWith(p.app.url + '/media/')).toBe(true);
      expect(url).not.toMatch(/fal\.media/);
      // Signed: the URL itself lets fal read the image, nothing else.
      expect((await fetch(url)).headers.get('content-type')).toMatch(/^image\//);
    }
  });
});
