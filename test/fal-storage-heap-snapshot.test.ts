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
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("uploads to fal's storage", () => {
  // Node 20.20 was seen to crash (SIGSEGV) at the next heap snapshot of a process that had read a
  // Blob from fs.openAsBlob: an operator's diagnostics would kill a worker mid-generation.
  it("leave the process able to write a heap snapshot, and fal serves the file's exact bytes", async () => {
    // About 2.7 MB: read from disk in many chunks, as a real photo is.
    const png = await makeImage({ width: 1280, height: 720, noise: true });
    const file = join(dir, 'front.png');
    writeFileSync(file, png);
    const child = tsx('test/helpers/upload-then-snapshot.ts', [file, dir], {
      FAL_KEY: 'key:secret',
      FAL_PROXY_URL: fal.url,
      LOG_LEVEL: 'warn',
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, 45_000, 'late')));
      const exit = await Promise.race([child.exited, late]);
      expect(exit, child.output()).toEqual({ code: 0, signal: null });
    } finally {
      clearTimeout(timer);
      await child.stop('SIGKILL');
    }
    // 'exit' can come before the last of its output has been read.
    const [line] = await child.waitFor(/\{"url".*\}/, 5_000);
    const { url, snapshot } = JSON.parse(line) as { url: string; snapshot: string };
    expect(statSync(snapshot).size).toBeGreaterThan(1_000_000);
    expect(url).toMatch(/^https:\/\/v3\.fal\.media\/files\/emulator\/[0-9a-f-]{36}\/front\.png$/);
    const served = await fetch(url.replace('https://v3.fal.media', fal.url));
    expect(served.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await served.arrayBuffer()).equals(png)).toBe(true);
  }, 60_000);
});
