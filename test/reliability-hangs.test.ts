import { createServer, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { COPY_ATTEMPTS } from '../src/queue/copy-queue.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { startPipeline } from './helpers/pipeline.ts';

/**
 * Every wait is bounded: a call that never answers (S3, fal's status or result endpoints) fails
 * after its timeout and is handled like any failure, so every transition ends (COMPLETED, or
 * FAILED with a code) within the bound the README states for it.
 */

/** Accepts TCP connections and never says a word: a server that hangs. */
async function silentServer() {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    connections: () => accepted,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('calls that never answer', () => {
  it('S3 accepts connections and never answers: each transition fails MEDIA_COPY_FAILED within its stated bound, keeping fal’s URL, paid once', { timeout: 90_000 }, async () => {
    const s3 = await silentServer();
    const timeoutMs = 300;
    const p = await startPipeline({
      emulator: { latencyMs: 100 },
      env: {
        STORAGE_DRIVER: 's3',
        S3_BUCKET: 'segue-hangs',
        S3_ENDPOINT: s3.url,
        S3_ACCESS_KEY_ID: 'test',
        S3_SECRET_ACCESS_KEY: 'test',
        S3_TIMEOUT_MS: String(timeoutMs),
      },
      inlineWorkers: 1,
    });
    try {
      const account = await p.account();
      const started = Date.now();
      const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(2) });
      // README: a copy ends within COPY_ATTEMPTS tries of (3 uploads of at most S3_TIMEOUT_MS each, with
      // 0.2 + 0.4 s between) plus the copy queue's backoff (1 + 2 + 4 + 8 s, at most 1.5× with jitter).
      const bound = COPY_ATTEMPTS * (3 * timeoutMs + 600) + 1.5 * 15_000 + 5_000;
      const rows = await p.settled(batch!.id, bound);
      expect(Date.now() - started).toBeLessThan(bound);
      for (const row of rows) {
        expect(row).toMatchObject({ status: 'FAILED', errorCode: 'MEDIA_COPY_FAILED', attempts: 1 });
        expect(row.falVideoUrl).toMatch(/output\.mp4$/);
      }
      // Every try reached the silent server: 2 videos × COPY_ATTEMPTS copies × 3 uploads.
      expect(s3.connections()).toBeGreaterThanOrEqual(2 * COPY_ATTEMPTS * 3);
      expect(p.emulator.counters()).toMatchObject({ submitted: 2, duplicateInputs: 0 });
    } finally {
      await p.close();
      await s3.close();
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
