import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { writeAtomically } from '../src/media/encode.ts';
import { createMediaService } from '../src/media/service.ts';
import { mediaTools, probe, runFfmpeg, runTool, type MediaTools } from '../src/media/ffmpeg.ts';
import { until } from './helpers/wait.ts';

/** The pid of the process whose command line holds `marker`, once it catches SIGTERM (its handlers are set: it runs). */
async function pidRunning(marker: string): Promise<number | null> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.includes(marker)) continue;
    const caught = /SigCgt:\s*([0-9a-f]+)/.exec(await readFile(`/proc/${entry}/status`, 'utf8').catch(() => ''))?.[1];
    return caught && (BigInt(`0x${caught}`) >> 14n) & 1n ? Number(entry) : null;
  }
  return null;
}

// SEGUE_MEDIA_TOOLS=npm runs the suite on the npm ffmpeg 4.1 even where a system ffmpeg exists.
const prefer = (process.env.SEGUE_MEDIA_TOOLS ?? 'auto') as 'auto' | 'system' | 'npm';

let tools: MediaTools;
let dir: string;
beforeAll(async () => {
  tools = await mediaTools({ prefer });
  dir = await mkdtemp(path.join(tmpdir(), 'segue-media-ffmpeg-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('mediaTools', () => {
  it('finds a working ffmpeg and ffprobe and says where they came from', async () => {
    expect(tools.version).toMatch(/^ffmpeg version /);
    expect(['system', 'npm']).toContain(tools.source);
    if (prefer !== 'auto') expect(tools).toMatchObject({ source: prefer, ffprobeSource: prefer });
    console.info(`media tools: ${tools.source} ${tools.ffmpeg} (${tools.version}), ffprobe: ${tools.ffprobeSource} ${tools.ffprobe}`);
    const { stdout } = await runTool(tools.ffprobe, ['-version'], { captureStdout: true });
    expect(stdout.toString()).toMatch(/^ffprobe version /);
  });

  it('falls back to the npm binaries (ffmpeg 4.1, without xfade) when none is on the search path', async () => {
    const npm = await mediaTools({ searchPath: '' });
    expect(npm).toMatchObject({ source: 'npm', ffprobeSource: 'npm', hasXfade: false });
    expect(npm.ffmpeg).toContain(path.join('node_modules', '@ffmpeg-installer'));
    expect(npm.ffprobe).toContain(path.join('node_modules', '@ffprobe-installer'));
    expect(npm.version).toMatch(/Copyright \(c\) 2000-2018/);
    // Cached: the same option set answers the same object.
    expect(await mediaTools({ searchPath: '' })).toBe(npm);
  });

  it("'npm-first' (posters) takes the static npm ffmpeg even with a system one on the search path, unless a path is given", async () => {
    const system = path.join(dir, 'system-bin');
    await mkdir(system, { recursive: true });
    await symlink(tools.ffmpeg, path.join(system, 'ffmpeg'));
    const quick = await mediaTools({ prefer: 'npm-first', searchPath: system });
    expect(quick.source).toBe('npm');
    expect(quick.ffmpeg).toContain(path.join('node_modules', '@ffmpeg-installer'));
    // An explicit FFMPEG_PATH is used as given, whatever the preference.
    const explicit = await mediaTools({ prefer: 'npm-first', ffmpegPath: tools.ffmpeg, searchPath: system });
    expect(explicit.ffmpeg).toBe(path.resolve(tools.ffmpeg));
  });

  it('fails with MEDIA_TOOL_NOT_FOUND when an explicit path does not run, or no system binary is allowed', async () => {
    await expect(mediaTools({ ffmpegPath: path.join(dir, 'no-ffmpeg') })).rejects.toMatchObject({
      name: 'MediaError',
      code: 'MEDIA_TOOL_NOT_FOUND',
    });
    await expect(mediaTools({ prefer: 'system', searchPath: dir })).rejects.toMatchObject({ code: 'MEDIA_TOOL_NOT_FOUND' });
  });
});

describe('runTool / runFfmpeg', () => {
  it('turns a failing run into MEDIA_TOOL_FAILED with the end of stderr', async () => {
    const error = await runFfmpeg(['-i', path.join(dir, 'missing.mp4'), '-f', 'null', '-'], { tools }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'MediaError', code: 'MEDIA_TOOL_FAILED', retryable: false });
    expect((error as Error).message).toMatch(/missing\.mp4/);
    expect((error as { stderr: string }).stderr).toMatch(/No such file/);
  });

  it('kills a run that passes its timeout (MEDIA_TIMEOUT, retryable) or is aborted (MEDIA_ABORTED)', async () => {
    const endless = ['-f', 'lavfi', '-i', 'testsrc2=s=64x64', '-f', 'null', '-'];
    const started = Date.now();
    await expect(runFfmpeg(endless, { tools, timeoutMs: 300 })).rejects.toMatchObject({ code: 'MEDIA_TIMEOUT', retryable: true });
    expect(Date.now() - started).toBeLessThan(5_000);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    await expect(runFfmpeg(endless, { tools, signal: controller.signal })).rejects.toMatchObject({ code: 'MEDIA_ABORTED' });
  });

  it('a run stopped by a signal Segue did not send (a service manager, the OOM killer) fails retryable: another attempt may pass; a crash does not', async () => {
    for (const [signal, retryable] of [['SIGTERM', true], ['SIGINT', true], ['SIGKILL', true], ['SIGSEGV', false]] as const) {
      const marker = `segue-stopped-${signal}-${process.pid}-${Date.now()}`;
      // Bounded, should the signal never come: no ffmpeg outlives the test. In the test's own
      // directory: where a crash's core file would go, were core files on.
      const source = 'testsrc2=s=64x64:d=600';
      const run = runFfmpeg(['-re', '-f', 'lavfi', '-i', source, '-metadata', `comment=${marker}`, '-f', 'null', '-'], { tools, timeoutMs: 30_000, cwd: dir }).catch((e: unknown) => e);
      const pid = await until(() => pidRunning(marker), { what: `ffmpeg ${marker}` });
      process.kill(pid, signal);
      const error = await run;
      expect(error, signal).toMatchObject({ name: 'MediaError', code: 'MEDIA_TOOL_FAILED', retryable });
      expect((error as Error).message).toMatch(signal === 'SIGTERM' || signal === 'SIGINT' ? /255: stopped by a signal/ : new RegExp(signal));
    }
  });

  it('reports a binary that cannot be started as MEDIA_TOOL_NOT_FOUND', async () => {
    await expect(runTool(path.join(dir, 'nothing-here'), [])).rejects.toMatchObject({ code: 'MEDIA_TOOL_NOT_FOUND' });
  });
});

describe('probe', () => {
  it('reads duration, size, codecs and audio presence', async () => {
    const file = path.join(dir, 'av.mp4');
    await runFfmpeg(
      ['-f', 'lavfi', '-i', 'testsrc2=s=160x90:r=25:d=2', '-f', 'lavfi', '-i', 'sine=d=2', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-shortest', file],
      { tools },
    );
    const info = await probe(file, { tools });
    expect(info).toMatchObject({ width: 160, height: 90, hasAudio: true, videoCodec: 'h264', audioCodec: 'aac', pixelFormat: 'yuv420p', fps: 25 });
    expect(info.durationSeconds).toBeGreaterThan(1.9);
    expect(info.durationSeconds).toBeLessThan(2.1);
  });

  it('fails with MEDIA_PROBE_FAILED on a file that is not media', async () => {
    const file = path.join(dir, 'notes.txt');
    await writeFile(file, 'not a video');
    await expect(probe(file, { tools })).rejects.toMatchObject({ code: 'MEDIA_PROBE_FAILED' });
  });
});

describe('writeAtomically', () => {
  it('puts only the finished file in place, and leaves nothing when the render fails', async () => {
    const folder = path.join(dir, 'atomic', 'new-folder');
    const output = path.join(folder, 'poster.jpg');
    const seen: string[] = [];
    await writeAtomically(output, async (partial) => {
      await writeFile(partial, 'frame');
      seen.push(...(await readdir(folder)));
    });
    // Written aside (the folder made for it), then renamed: a reader never sees half a file.
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatch(/^poster\.jpg\.[0-9a-f]{12}\.part$/);
    expect(await readdir(folder)).toEqual(['poster.jpg']);
    expect(await readFile(output, 'utf8')).toBe('frame');

    const failing = path.join(folder, 'failed.jpg');
    await expect(
      writeAtomically(failing, async (partial) => {
        await writeFile(partial, 'half a fr');
        throw new Error('ffmpeg died');
      }),
    ).rejects.toThrow('ffmpeg died');
    // The old file is untouched, and nothing of the failed one is left.
    expect(await readdir(folder)).toEqual(['poster.jpg']);
  });
});

describe('MediaService.poster on local storage', () => {
  it('renders the poster straight into place beside its video: no work directory, no copy, nothing else left', async () => {
    const root = path.join(dir, 'poster-storage');
    const config = loadConfig({ ...process.env, STORAGE_DRIVER: 'local', MEDIA_DIR: root, PUBLIC_URL: 'http://localhost:4000', LOG_LEVEL: 'warn', LOG_PRETTY: 'false' });
    const media = createMediaService(config, createLogger(config));
    const tmp = process.env.TMPDIR;
    try {
      const store = await media.storage();
      const video = store.path!('transitions/t1/r1-a1.mp4');
      await mkdir(path.dirname(video), { recursive: true });
      await copyFile(path.resolve('tools/fal-emulator/fixtures/5s.mp4'), video);
      const poster = await media.poster('transitions/t1/r1-a1.mp4', 'transitions/t1/r1-poster.jpg');
      expect(poster).toEqual({ key: 'transitions/t1/r1-poster.jpg', url: 'http://localhost:4000/media/transitions/t1/r1-poster.jpg' });
      expect(poster.url).toBe(store.url('transitions/t1/r1-poster.jpg'));
      expect((await readFile(store.path!('transitions/t1/r1-poster.jpg'))).subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
      expect((await readdir(path.dirname(video))).sort()).toEqual(['r1-a1.mp4', 'r1-poster.jpg']);

      // Again with a temporary directory that cannot be used (the tools' helper process already
      // runs): a poster that made a work directory there would fail.
      const blocked = path.join(dir, 'not-a-directory');
      await writeFile(blocked, '');
      process.env.TMPDIR = blocked;
      await media.poster('transitions/t1/r1-a1.mp4', 'transitions/t1/r2-poster.jpg');
      expect((await readdir(path.dirname(video))).sort()).toEqual(['r1-a1.mp4', 'r1-poster.jpg', 'r2-poster.jpg']);
    } finally {
      if (tmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = tmp;
      media.close();
    }
  });
});
