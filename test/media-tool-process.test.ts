import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { getPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mediaTools, runFfmpeg, type MediaTools } from '../src/media/ffmpeg.ts';
import { createMediaService } from '../src/media/service.ts';
import { ToolProcess } from '../src/media/tool-process.ts';
import { createLogger } from '../src/logger.ts';
import { testConfig } from './helpers/app.ts';

let tools: MediaTools;
const helper = new ToolProcess();
beforeAll(async () => {
  tools = { ...(await mediaTools()), run: helper.run };
});
afterAll(() => helper.close());

/** The parent process id of a shell started through the helper. */
const parentOfRun = async (process: ToolProcess) =>
  Number((await process.run('/bin/sh', ['-c', 'echo $PPID'], { captureStdout: true })).stdout.toString().trim());

describe('ToolProcess: ffmpeg and ffprobe started from a helper process', () => {
  it('starts runs from the helper, not from this process, and hands back stdout', async () => {
    const parent = await parentOfRun(helper);
    expect(parent).toBeGreaterThan(0);
    expect(parent).not.toBe(process.pid);
    // The same helper serves every run.
    expect(await parentOfRun(helper)).toBe(parent);
    const { stdout } = await helper.run(tools.ffmpeg, ['-version'], { captureStdout: true });
    expect(stdout.toString()).toMatch(/^ffmpeg version /);
  });

  it('hands back a failed run as the MediaError runTool gives, with its code and stderr', async () => {
    const error = await runFfmpeg(['-i', '/nonexistent/clip.mp4', '-f', 'null', '-'], { tools }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'MediaError', code: 'MEDIA_TOOL_FAILED', retryable: false });
    expect((error as { stderr: string }).stderr).toMatch(/No such file/);
  });

  it('stops a run on abort (MEDIA_ABORTED) and on timeout (MEDIA_TIMEOUT)', async () => {
    const endless = ['-f', 'lavfi', '-i', 'testsrc2=s=64x64', '-f', 'null', '-'];
    const controller = new AbortController();
    const started = Date.now();
    const aborted = runFfmpeg(endless, { tools, signal: controller.signal });
    setTimeout(() => controller.abort(), 300);
    await expect(aborted).rejects.toMatchObject({ code: 'MEDIA_ABORTED' });
    await expect(runFfmpeg(endless, { tools, timeoutMs: 300 })).rejects.toMatchObject({ code: 'MEDIA_TIMEOUT', retryable: true });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('the runs of a helper that dies start again in this process; the next run starts a new helper', async () => {
    const own = new ToolProcess();
    try {
      const first = await parentOfRun(own);
      const running = own.run('/bin/sh', ['-c', 'sleep 0.5; echo $PPID'], { captureStdout: true });
      await new Promise((r) => setTimeout(r, 100));
      process.kill(first, 'SIGKILL');
      expect(Number((await running).stdout.toString().trim())).toBe(process.pid);
      const second = await parentOfRun(own);
      expect(second).not.toBe(first);
      expect(second).not.toBe(process.pid);
    } finally {
      own.close();
    }
  });

  it('a helper that dies (the OOM killer, a kill -9) takes its runs with it: none is left running beside the run started again here', async () => {
    const own = new ToolProcess();
    const dir = mkdtempSync(join(tmpdir(), 'segue-helper-'));
    const stop = new AbortController();
    try {
      const helperPid = await parentOfRun(own);
      const running = own.run('/bin/sh', ['-c', 'echo $$ > "$0"; exec sleep 30', join(dir, 'run.pid')], { signal: stop.signal });
      const inHelper = await pidIn(join(dir, 'run.pid'));
      process.kill(helperPid, 'SIGKILL');
      await expect.poll(() => runs(inHelper), { timeout: 5_000 }).toBe(false);
      // The run started again here is this test's to stop.
      stop.abort();
      await expect(running).rejects.toMatchObject({ code: 'MEDIA_ABORTED' });
    } finally {
      stop.abort();
      own.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a helper that hangs is killed with its runs once a run outlasts its timeout and the grace (MEDIA_TIMEOUT)', { timeout: 20_000 }, async () => {
    const own = new ToolProcess();
    const dir = mkdtempSync(join(tmpdir(), 'segue-helper-'));
    try {
      const helperPid = await parentOfRun(own);
      const running = own.run('/bin/sh', ['-c', 'echo $$ > "$0"; exec sleep 30', join(dir, 'run.pid')], { timeoutMs: 300 });
      const inHelper = await pidIn(join(dir, 'run.pid'));
      // Stopped, the helper can neither enforce the run's timeout nor answer.
      process.kill(helperPid, 'SIGSTOP');
      await expect(running).rejects.toMatchObject({ code: 'MEDIA_TIMEOUT', retryable: true });
      await expect.poll(() => runs(inHelper), { timeout: 5_000 }).toBe(false);
      await expect.poll(() => runs(helperPid), { timeout: 5_000 }).toBe(false);
    } finally {
      own.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('close() ends the helper; runs after it start from this process', async () => {
    const own = new ToolProcess();
    const pid = await parentOfRun(own);
    own.close();
    await expect.poll(() => alive(pid), { timeout: 5_000 }).toBe(false);
    expect(await parentOfRun(own)).toBe(process.pid);
  });
});

describe('the priority of media runs', () => {
  it('runs every ffmpeg and ffprobe of the media service at MEDIA_NICE (10 by default), from the helper or, with it down, from this process', async () => {
    const own = getPriority();
    // The niceness of the shell itself, read once the parent has had time to set it.
    const niceOfRun = async (run: NonNullable<MediaTools['run']>) =>
      Number((await run('/bin/sh', ['-c', 'sleep 0.2; cut -d " " -f 19 /proc/$$/stat'], { captureStdout: true })).stdout.toString().trim());
    for (const [env, nice] of [[{}, 10], [{ MEDIA_NICE: '3' }, 3], [{ MEDIA_NICE: '0' }, 0]] as const) {
      const config = testConfig(env);
      const media = createMediaService(config, createLogger(config));
      const { run } = await media.tools();
      if (!run) throw new Error('the media service runs its tools through the helper');
      expect(await niceOfRun(run), JSON.stringify(env)).toBe(Math.max(own, nice));
      media.close();
      expect(await niceOfRun(run), `${JSON.stringify(env)}, helper closed`).toBe(Math.max(own, nice));
    }
    expect(() => testConfig({ MEDIA_NICE: '20' })).toThrow(/MEDIA_NICE/);
  });

  // Linux's autogroup scheduling shares the CPU between sessions first; the helper leads its own.
  it.skipIf(!existsSync('/proc/self/autogroup'))(
    "puts the helper's session, where every run goes, at MEDIA_NICE too (never below this process's), so that the runs together give way",
    async () => {
      // A process in the root group reads an empty file: nice 0.
      const autogroup = (text: string) => {
        const [, group = '', nice = '0'] = /^(\S+) nice (-?\d+)/.exec(text) ?? [];
        return { group, nice: Number(nice) };
      };
      const own = autogroup(readFileSync('/proc/self/autogroup', 'utf8'));
      for (const [env, nice] of [[{}, 10], [{ MEDIA_NICE: '3' }, 3], [{ MEDIA_NICE: '0' }, 0]] as const) {
        const config = testConfig(env);
        const media = createMediaService(config, createLogger(config));
        try {
          const { run } = await media.tools();
          const ofRun = autogroup((await run!('/bin/cat', ['/proc/self/autogroup'], { captureStdout: true })).stdout.toString());
          expect(ofRun.group, JSON.stringify(env)).not.toBe(own.group);
          expect(ofRun.nice, JSON.stringify(env)).toBe(Math.max(own.nice, nice));
        } finally {
          media.close();
        }
      }
    },
  );
});

/** The pid a run wrote into `file`, once it has. */
const pidIn = async (file: string) => {
  await expect.poll(() => existsSync(file) && readFileSync(file, 'utf8').trim() !== '', { timeout: 5_000 }).toBe(true);
  return Number(readFileSync(file, 'utf8'));
};

/** Whether a process runs (a killed one its parent has not reaped yet, a zombie, does not). */
const runs = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
