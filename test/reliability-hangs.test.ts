import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { idOf } from '../src/graphql/ids.ts';
import { COPY_ATTEMPTS } from '../src/queue/copy-queue.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { makeImage } from './helpers/images.ts';
import { startPipeline } from './helpers/pipeline.ts';
import { uploadImage } from './helpers/uploads.ts';
import { until } from './helpers/wait.ts';

/**
 * Every wait is bounded: a call that never answers (S3, fal's status or result endpoints) fails
 * after its timeout and is handled like any failure, so every transition ends (COMPLETED, or
 * FAILED with a code) within the bound the README states for it.
 */

/**
 * A TCP proxy in front of a real server that can go silent: from then on it accepts connections
 * and forwards nothing either way, as a server that hangs (or a network that drops packets).
 */
async function silenceableProxy(target: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  let silent = false;
  let accepted = 0;
  const server = createServer((client) => {
    accepted += 1;
    const upstream = connect(target);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (chunk) => !silent && upstream.write(chunk));
    upstream.on('data', (chunk) => !silent && client.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    silence: () => {
      silent = true;
      accepted = 0;
    },
    /** Connections accepted since it went silent. */
    connections: () => accepted,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

type S3rverServer = { run(): Promise<AddressInfo>; close(): Promise<void> };
const S3rver = createRequire(import.meta.url)('s3rver') as new (options: Record<string, unknown>) => S3rverServer;

/** An S3 server (s3rver) behind a proxy that can go silent, and the settings pointing Segue at it. */
async function s3Behind() {
  const dir = await mkdtemp(path.join(tmpdir(), 'segue-s3-hang-'));
  const s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: [{ name: 'segue-hangs' }] });
  const { port } = await s3.run();
  const proxy = await silenceableProxy({ host: '127.0.0.1', port });
  return {
    proxy,
    env: {
      STORAGE_DRIVER: 's3',
      S3_BUCKET: 'segue-hangs',
      S3_ENDPOINT: proxy.url,
      S3_ACCESS_KEY_ID: 'S3RVER',
      S3_SECRET_ACCESS_KEY: 'S3RVER',
      S3_TIMEOUT_MS: String(S3_TIMEOUT_MS),
    },
    async close() {
      await proxy.close();
      await s3.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const S3_TIMEOUT_MS = 300;
/** README: one S3 upload gives up after 3 tries of at most S3_TIMEOUT_MS of silence, 0.2 + 0.4 s apart. */
const UPLOAD_BOUND_MS = 3 * S3_TIMEOUT_MS + 600;

describe('calls that never answer', () => {
  it('S3 accepts connections and never answers while videos are copied: each transition fails MEDIA_COPY_FAILED within its stated bound, keeping fal’s URL, paid once', { timeout: 90_000 }, async () => {
    const storage = await s3Behind();
    const p = await startPipeline({ emulator: { latencyMs: 1_500 }, env: storage.env, inlineWorkers: 1 });
    try {
      const account = await p.account();
      const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(2) });
      // The images are checked and stored, the requests at fal: now S3 stops answering.
      await until(() => p.emulator.counters().submitted === 2, { what: 'both submitted' });
      storage.proxy.silence();
      const silentAt = Date.now();
      // README: a copy ends within COPY_ATTEMPTS tries (each one upload at most) plus the copy
      // queue's backoff (1 + 2 + 4 + 8 s, at most 1.5× with jitter).
      const bound = 1_500 + COPY_ATTEMPTS * UPLOAD_BOUND_MS + 1.5 * 15_000 + 5_000;
      const rows = await p.settled(batch!.id, bound);
      expect(Date.now() - silentAt).toBeLessThan(bound);
      for (const row of rows) {
        expect(row).toMatchObject({ status: 'FAILED', errorCode: 'MEDIA_COPY_FAILED', attempts: 1 });
        expect(row.falVideoUrl).toMatch(/output\.mp4$/);
      }
      // Every try reached the silent server: 2 videos × COPY_ATTEMPTS copies × 3 uploads.
      expect(storage.proxy.connections()).toBeGreaterThanOrEqual(2 * COPY_ATTEMPTS * 3);
      expect(p.emulator.counters()).toMatchObject({ submitted: 2, duplicateInputs: 0 });
    } finally {
      await p.close();
      await storage.close();
    }
  });

  it('S3 never answers while the images are readied: each transition fails IMAGE_PREPARE_FAILED within its bound, nothing sent to fal', { timeout: 60_000 }, async () => {
    const storage = await s3Behind();
    storage.proxy.silence();
    const p = await startPipeline({
      emulator: { latencyMs: 100 },
      env: { ...storage.env, FAL_MAX_RETRIES: '1', FAL_RETRY_DELAY_MS: '100' },
      inlineWorkers: 1,
    });
    try {
      const account = await p.account();
      const started = Date.now();
      const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(2) });
      // Two attempts (FAL_MAX_RETRIES = 1), each storing an image at most once.
      const bound = 2 * 2 * UPLOAD_BOUND_MS + 5_000;
      const rows = await p.settled(batch!.id, bound);
      expect(Date.now() - started).toBeLessThan(bound);
      for (const row of rows) expect(row).toMatchObject({ status: 'FAILED', errorCode: 'IMAGE_PREPARE_FAILED' });
      expect(p.emulator.counters().submitted).toBe(0);
    } finally {
      await p.close();
      await storage.close();
    }
  });

  it('fal’s storage never answers the PUT of an image: each attempt gives up after FAL_UPLOAD_TIMEOUT_MS, the transition fails IMAGE_PREPARE_FAILED within its bound, nothing sent to fal', { timeout: 60_000 }, async () => {
    const uploadTimeoutMs = 800;
    // PUBLIC_URL on 127.0.0.1 (webhooks on): Segue's URLs are not public, so its images go to fal's storage.
    const p = await startPipeline({
      webhooks: true,
      env: { FAL_UPLOAD_TIMEOUT_MS: String(uploadTimeoutMs), FAL_MAX_RETRIES: '1', FAL_RETRY_DELAY_MS: '100' },
      inlineWorkers: 1,
    });
    try {
      p.emulator.inject({ on: 'upload', hang: true, times: Infinity });
      const account = await p.account();
      const [front, tail] = await Promise.all(
        ['#335577', '#775533'].map(async (color) => (await uploadImage(p.app.graphqlUrl, account.apiKey, await makeImage({ width: 800, height: 600, color }))).data!.uploadImage),
      );
      const started = Date.now();
      const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [{ frontImageId: idOf('Image', front!.id), tailImageId: idOf('Image', tail!.id), prompt: 'storage silent' }] });
      // Two attempts (FAL_MAX_RETRIES = 1), each uploading both images at once.
      const bound = 2 * uploadTimeoutMs + 5_000;
      const [row] = await p.settled(batch!.id, bound);
      expect(Date.now() - started).toBeLessThan(bound);
      expect(Date.now() - started).toBeGreaterThanOrEqual(2 * uploadTimeoutMs);
      expect(row).toMatchObject({ status: 'FAILED', errorCode: 'IMAGE_PREPARE_FAILED' });
      expect(row!.errorMessage).toMatch(/timed out/);
      expect(p.emulator.counters()).toMatchObject({ submitted: 0, uploads: 0 });
      expect(p.emulator.counters().hungCalls).toBeGreaterThanOrEqual(4);
    } finally {
      await p.close();
    }
  });

  it('fal’s status and result calls hang: each gives up after FAL_CALL_TIMEOUT_MS, tracking goes on, and every transition completes', { timeout: 60_000 }, async () => {
    const callTimeoutMs = 500;
    const p = await startPipeline({ emulator: { latencyMs: 300 }, env: { FAL_CALL_TIMEOUT_MS: String(callTimeoutMs) }, inlineWorkers: 1 });
    try {
      p.emulator.inject({ on: 'status', hang: true, times: 4 });
      p.emulator.inject({ on: 'result', hang: true, times: 2 });
      const account = await p.account();
      const started = Date.now();
      const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(3) });
      const rows = await p.settled(batch!.id, 30_000);
      expect(rows.every((r) => r.status === 'COMPLETED' && r.attempts === 1)).toBe(true);
      const c = p.emulator.counters();
      expect(c.hungCalls).toBe(6);
      expect(c).toMatchObject({ submitted: 3, duplicateInputs: 0 });
      // Each hung call cost one FAL_CALL_TIMEOUT_MS, and they ran side by side at worst in sequence.
      expect(Date.now() - started).toBeLessThan(300 + 6 * callTimeoutMs + 10_000);
    } finally {
      await p.close();
    }
  });
});
