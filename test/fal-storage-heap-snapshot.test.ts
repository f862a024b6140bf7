import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFalEmulator, type FalEmulator } from '../tools/fal-emulator/index.ts';
import { makeImage } from './helpers/images.ts';
import { tsx } from './helpers/process.ts';

let fal: FalEmulator;
let dir: string;
beforeAll(async () => {
  fal = await startFalEmulator({ latencyMs: 0, apiKey: 'key:secret' });
  dir = mkdtempSync(join(tmpdir(), 'segue-upload-snapshot-'));
});
afterAll(async () => {
  await fal?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("uploads to fal's storage", () => {
  // Node 20 crashes (SIGSEGV) at the next heap snapshot of a process that has read a Blob from
  // fs.openAsBlob, however long ago: an operator's diagnostics would kill a worker mid-generation.
  it('leave the process able to write a heap snapshot, and fal has the bytes read from disk', async () => {
    const png = await makeImage({ width: 640, height: 480 });
    const file = join(dir, 'front.png');
    writeFileSync(file, png);
    const child = tsx('test/helpers/upload-then-snapshot.ts', [file, dir], {
      FAL_KEY: 'key:secret',
      FAL_PROXY_URL: fal.url,
      LOG_LEVEL: 'warn',
    });
    const exit = await child.exited;
    expect(exit, child.output()).toEqual({ code: 0, signal: null });
    const { url, snapshot } = JSON.parse(child.stdout().trim().split('\n').pop()!) as { url: string; snapshot: string };
    expect(statSync(snapshot).size).toBeGreaterThan(1_000_000);
    expect(url).toMatch(/^https:\/\/v3\.fal\.media\/files\/emulator\/[0-9a-f-]{36}\/front\.png$/);
    const served = await fetch(url.replace('https://v3.fal.media', fal.url));
    expect(served.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await served.arrayBuffer()).equals(png)).toBe(true);
  }, 60_000);
});
