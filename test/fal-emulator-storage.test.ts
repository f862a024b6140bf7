import { createFalClient } from '@fal-ai/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFalEmulator, type FalEmulator } from '../tools/fal-emulator/index.ts';
import { makeImage } from './helpers/images.ts';
import { until } from './helpers/wait.ts';

let fal: FalEmulator;
beforeAll(async () => {
  fal = await startFalEmulator({ latencyMs: 0, apiKey: 'key:secret' });
});
afterAll(() => fal?.close());

const client = () => createFalClient({ credentials: 'key:secret', proxyUrl: { url: fal.url, when: 'always' }, suppressLocalCredentialsWarning: true });
const MODEL = 'fal-ai/kling-video/v2.1/pro/image-to-video';

describe('fal emulator: storage uploads', () => {
  it('takes fal.storage.upload from the real client (initiate through the proxy, PUT straight to it), counts it and serves the file', async () => {
    const png = await makeImage({ width: 500, height: 400 });
    const url = await client().storage.upload(new File([new Uint8Array(png)], 'front.png', { type: 'image/png' }));
    expect(url).toMatch(/^https:\/\/v3\.fal\.media\/files\/emulator\/[0-9a-f-]{36}\/front\.png$/);
    expect(fal.counters()).toMatchObject({ uploads: 1, uploadedBytes: png.length });
    const served = await fetch(url.replace('https://v3.fal.media', fal.url));
    expect(Buffer.from(await served.arrayBuffer()).equals(png)).toBe(true);
  });

  it('refuses an upload without the key, as fal does', async () => {
    const anonymous = createFalClient({ credentials: 'wrong:key', proxyUrl: { url: fal.url, when: 'always' }, suppressLocalCredentialsWarning: true });
    await expect(anonymous.storage.upload(new Blob([new Uint8Array([1, 2, 3])], { type: 'image/png' }))).rejects.toMatchObject({ status: 401 });
  });

  it('answers the PUT of the bytes with an injected error, after reading them or at once, storing nothing; the next upload is stored', async () => {
    const c = client();
    const before = fal.counters();
    fal.inject({ on: 'upload', status: 503 });
    await expect(c.storage.upload(new File([new Uint8Array(1024)], 'a.png', { type: 'image/png' }))).rejects.toMatchObject({ status: 503 });
    // Refused up front: the answer comes while the body has sent one chunk of its four, and the
    // rest would go only once it has come (a server that waited for the body would never answer).
    fal.inject({ on: 'upload', status: 403, early: true });
    let chunksSent = 0;
    let sentAtAnswer = -1;
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => (answer = resolve));
    const gated = createFalClient({
      credentials: 'key:secret',
      proxyUrl: { url: fal.url, when: 'always' },
      suppressLocalCredentialsWarning: true,
      fetch: async (input, init) => {
        if (init?.method !== 'PUT') return fetch(input, init);
        const body = new ReadableStream<Uint8Array>({
          async pull(controller) {
            if (chunksSent > 0) await answered;
            if (chunksSent === 4) return controller.close();
            chunksSent += 1;
            controller.enqueue(new Uint8Array(1024 * 1024));
          },
        });
        const call = new AbortController();
        const timer = setTimeout(() => call.abort(), 5_000);
        try {
          const response = await fetch(input, { ...init, body, duplex: 'half', signal: call.signal } as RequestInit);
          sentAtAnswer = chunksSent;
          const text = await response.text();
          return new Response(text, { status: response.status, headers: response.headers });
        } finally {
          clearTimeout(timer);
          answer();
          call.abort();
        }
      },
    });
    await expect(gated.storage.upload(new File([new Uint8Array(4 * 1024 * 1024)], 'b.png', { type: 'image/png' }))).rejects.toMatchObject({ status: 403 });
    expect(sentAtAnswer).toBe(1);
    expect(fal.counters()).toMatchObject({ uploads: before.uploads, uploadedBytes: before.uploadedBytes, uploadsRefused: before.uploadsRefused + 2 });
    await c.storage.upload(new File([new Uint8Array(10)], 'c.png', { type: 'image/png' }));
    expect(fal.counters()).toMatchObject({ uploads: before.uploads + 1, uploadedBytes: before.uploadedBytes + 10 });
  });

  it('leaves the PUT of the bytes unanswered with a hang fault, until the client gives up', async () => {
    const hungBefore = fal.counters().hungCalls;
    fal.inject({ on: 'upload', hang: true });
    const giveUp = createFalClient({
      credentials: 'key:secret',
      proxyUrl: { url: fal.url, when: 'always' },
      suppressLocalCredentialsWarning: true,
      fetch: (input, init) => fetch(input, { ...init, signal: AbortSignal.timeout(500) }),
    });
    const started = Date.now();
    await expect(giveUp.storage.upload(new File([new Uint8Array(1024)], 'a.png', { type: 'image/png' }))).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(fal.counters().hungCalls).toBe(hungBefore + 1);
  });

  it('runs Kling with uploaded images and answers 422 like fal for one too small or missing', async () => {
    const c = client();
    const good = await c.storage.upload(new File([new Uint8Array(await makeImage({ width: 600, height: 400 }))], 'a.png', { type: 'image/png' }));
    const small = await c.storage.upload(new File([new Uint8Array(await makeImage({ width: 200, height: 200 }))], 'b.png', { type: 'image/png' }));
    const ok = await c.queue.submit(MODEL, { input: { prompt: 'ok', image_url: good, tail_image_url: good } });
    const bad = await c.queue.submit(MODEL, { input: { prompt: 'small', image_url: good, tail_image_url: small } });
    const missing = await c.queue.submit(MODEL, { input: { prompt: 'missing', image_url: good.replace(/[0-9a-f-]{36}/, '00000000-0000-4000-8000-000000000000') } });
    await until(() => fal.counters().completed >= 3, { what: 'three jobs' });
    await expect(c.queue.result(MODEL, { requestId: ok.request_id })).resolves.toMatchObject({ data: { video: { content_type: 'video/mp4' } } });
    await expect(c.queue.result(MODEL, { requestId: bad.request_id })).rejects.toMatchObject({ status: 422, body: { detail: [{ loc: ['body', 'tail_image_url'], type: 'image_too_small' }] } });
    await expect(c.queue.result(MODEL, { requestId: missing.request_id })).rejects.toMatchObject({ status: 422, body: { detail: [{ loc: ['body', 'image_url'], type: 'file_download_error' }] } });
  });
});
