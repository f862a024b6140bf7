import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createFalImageStorage, type FalImageStorage } from '../src/providers/fal-storage.ts';
import { startFalEmulator, type FalEmulator } from '../tools/fal-emulator/index.ts';
import { until } from './helpers/wait.ts';

/**
 * An image's upload to fal's storage, as a worker makes it (src/providers/fal-storage.ts), against
 * a storage server that refuses or falls silent: every call ends within FAL_UPLOAD_TIMEOUT_MS, with
 * the error, and the file read from disk is closed, so a worker neither waits nor leaks a
 * descriptor for an upload that cannot go through.
 */

const TIMEOUT_MS = 4_000;
const SIZE = 24 * 1024 * 1024;
let fal: FalEmulator;
let dir: string;
let storage: FalImageStorage;
let files = 0;

beforeAll(async () => {
  fal = await startFalEmulator({ latencyMs: 0, apiKey: 'key:secret' });
  dir = mkdtempSync(join(tmpdir(), 'segue-upload-bounds-'));
  storage = createFalImageStorage(
    loadConfig({ ...process.env, FAL_KEY: 'key:secret', FAL_PROXY_URL: fal.url, FAL_UPLOAD_TIMEOUT_MS: String(TIMEOUT_MS) }),
  );
});
afterAll(async () => {
  await fal?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * A file of its own for each test (what one test leaves open is not the next one's failure), of
 * 24 MB: more than a loopback connection buffers, so a server that reads nothing leaves most of it
 * unsent (and the file open) for as long as the upload waits.
 */
function imageFile(): string {
  const file = join(dir, `image-${++files}.png`);
  writeFileSync(file, randomBytes(SIZE));
  return file;
}

/** Descriptors this process holds open on `path`. */
const openOn = (path: string) =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false; // closed while listed
    }
  }).length;

/** The file is closed well before FAL_UPLOAD_TIMEOUT_MS would have ended the call. */
const closedSoon = (file: string) => until(() => openOn(file) === 0, { what: 'the file closed', timeoutMs: 1_500 });

async function timed<T>(work: Promise<T>): Promise<{ ms: number; error: unknown }> {
  const started = Date.now();
  const error = await work.then(
    () => null,
    (e: unknown) => e,
  );
  return { ms: Date.now() - started, error };
}

describe("an image's upload to fal's storage", () => {
  it('stores the whole file and closes it', async () => {
    const file = imageFile();
    const before = fal.counters().uploadedBytes;
    const url = await storage.upload(file, 'image/png', 'front.png');
    expect(url).toMatch(/^https:\/\/v3\.fal\.media\/files\/emulator\//);
    expect(fal.counters().uploadedBytes - before).toBe(SIZE);
    await closedSoon(file);
  });

  it('fails with the answer of a storage server that refuses it up front, at once, and closes the file', async () => {
    const file = imageFile();
    fal.inject({ on: 'upload', status: 403, early: true });
    const { ms, error } = await timed(storage.upload(file, 'image/png', 'front.png'));
    expect(error).toMatchObject({ status: 403 });
    expect(ms).toBeLessThan(TIMEOUT_MS);
    await closedSoon(file);
  });

  it('fails with the answer of a storage server that refuses it once read (503), and closes the file', async () => {
    const file = imageFile();
    fal.inject({ on: 'upload', status: 503 });
    const { error } = await timed(storage.upload(file, 'image/png', 'front.png'));
    expect(error).toMatchObject({ status: 503 });
    await closedSoon(file);
  });

  it('gives up on a storage server that neither reads nor answers after FAL_UPLOAD_TIMEOUT_MS, a garbage collection meanwhile or not, and closes the file', async () => {
    const file = imageFile();
    // A collection while the upload waits: a timer only its signal held would be gone with it.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    fal.inject({ on: 'upload', hang: true });
    const upload = timed(storage.upload(file, 'image/png', 'front.png'));
    await until(() => openOn(file) === 1, { what: 'the upload reading the file', timeoutMs: 2_000 });
    gc();
    const { ms, error } = await upload;
    expect(error).toMatchObject({ name: 'TimeoutError' });
    expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(ms).toBeLessThan(TIMEOUT_MS + 2_000);
    await closedSoon(file);
    expect(fal.counters().hungCalls).toBeGreaterThanOrEqual(1);
  });
});
