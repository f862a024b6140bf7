import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MediaError, type MediaErrorCode } from './errors.ts';
import { runTool, type RunOptions, type RunResult } from './ffmpeg.ts';

/**
 * Runs ffmpeg and ffprobe from a small helper process of this one. Starting a program from Node
 * forks the whole process first, which blocks its event loop for as long as copying its page
 * tables takes: about 20 ms per run from a worker holding 250 MB on a 2-core machine (6 ms from
 * a 50 MB process), during which no fal status, submit or claim of that worker moves. A worker
 * storing ten videos at once would stall ten times in a row. The helper holds next to nothing,
 * so a run starts there quickly, and off this process's loop entirely.
 *
 * If the helper cannot be started or keeps dying, runs start here as before: a poster is never
 * lost to the helper. The helper ends with this process (its IPC channel closes).
 */
export class ToolProcess {
  private child: ChildProcess | null = null;
  private readonly pending = new Map<number, PendingRun>();
  private nextId = 1;
  private failures = 0;
  private closed = false;

  /** Runs `binary` as runTool does, in the helper when it is up. */
  run = (binary: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> => {
    const child = this.closed || this.failures >= MAX_FAILURES ? null : this.helper();
    if (!child) return runTool(binary, args, options);
    const { signal, timeoutMs, cwd, captureStdout, maxStdoutBytes, nice } = options;
    // Only what runTool reads: callers pass their own options along (runFfmpeg's `tools`).
    const sent = { timeoutMs, cwd, captureStdout, maxStdoutBytes, nice };
    if (signal?.aborted) return Promise.reject(new MediaError('MEDIA_ABORTED', `${binary} was not started: aborted.`));
    const id = this.nextId++;
    return new Promise<RunResult>((resolve, reject) => {
      const onAbort = () => child.connected && child.send({ cancel: id });
      signal?.addEventListener('abort', onAbort, { once: true });
      // The helper enforces the run's timeout; this bounds the wait should the helper itself hang:
      // then it is replaced (its other runs start again here, see `helper`).
      const hung = setTimeout(() => {
        this.pending.get(id)?.reject(new MediaError('MEDIA_TIMEOUT', `${binary} did not answer from the helper process in time.`, { retryable: true }));
        if (running(child)) killWithRuns(child);
      }, (timeoutMs ?? DEFAULT_TIMEOUT_MS) + HELPER_GRACE_MS);
      const settle = () => {
        clearTimeout(hung);
        signal?.removeEventListener('abort', onAbort);
        this.pending.delete(id);
        if (this.pending.size === 0) child.channel?.unref();
      };
      this.pending.set(id, {
        resolve: (result) => (settle(), resolve(result)),
        reject: (error) => (settle(), reject(error)),
        // A run the helper took with it when it died starts again here: runs are safe to repeat
        // (renders overwrite their output, probes only read).
        // Its wait for the helper ends here: the helper is gone, and its group with it.
        again: () => {
          clearTimeout(hung);
          return runTool(binary, args, options).then((result) => (settle(), resolve(result)), (error: unknown) => (settle(), reject(error)));
        },
      });
      child.channel?.ref();
      try {
        child.send({ run: id, binary, args, options: sent } satisfies ToolRequest);
      } catch (error) {
        this.pending.get(id)?.reject(error);
      }
    });
  };

  /**
   * Ends the helper and the runs still under way there (they fail MEDIA_ABORTED). Killed rather
   * than asked: a helper whose loop is stuck would not hear the request, and in its own process
   * group nothing else would end it.
   */
  close() {
    this.closed = true;
    if (this.child && running(this.child)) killWithRuns(this.child);
    this.child = null;
  }

  private helper(): ChildProcess | null {
    if (this.child) return this.child;
    let child: ChildProcess;
    try {
      const entry = fileURLToPath(new URL(`./tool-process-child${EXTENSION}`, import.meta.url));
      child = fork(entry, [], {
        // Under tsx (development, tests) the helper is TypeScript too.
        execArgv: EXTENSION === '.ts' ? ['--import', 'tsx'] : [],
        serialization: 'advanced',
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        // Its own process group, which its runs join: a helper that dies (the OOM killer, a hang
        // killed below) is ended with whatever it had running, so no ffmpeg outlives it beside
        // the same run started again here.
        detached: true,
      });
    } catch {
      this.failures += 1;
      return null;
    }
    child.on('message', (message: ToolAnswer) => {
      const waiting = this.pending.get(message.id);
      if (!waiting) return;
      if ('result' in message) waiting.resolve({ ...message.result, stdout: Buffer.from(message.result.stdout) });
      else waiting.reject(new MediaError(message.error.code, message.error.message, message.error));
    });
    // A helper that cannot run (or whose channel broke) is let go and replaced at the next run.
    child.on('error', () => running(child) && killWithRuns(child));
    child.once('exit', () => {
      // At once: while any of its runs is left, the group's id cannot go to another process.
      killWithRuns(child);
      if (this.child === child) this.child = null;
      if (!this.closed) this.failures += 1;
      // What was running there is lost with it: each run starts again in this process, unless
      // this process is closing the helper because it is shutting down.
      for (const [id, waiting] of [...this.pending]) {
        if (this.closed) {
          waiting.reject(new MediaError('MEDIA_ABORTED', 'The media tool helper process was closed during the run.', { retryable: true }));
          continue;
        }
        this.pending.delete(id);
        void waiting.again();
      }
    });
    // Idle, the helper does not keep this process alive.
    child.unref();
    child.channel?.unref();
    this.child = child;
    return child;
  }
}

const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/** SIGKILL to the helper's process group: the helper and every run it started. */
function killWithRuns(child: ChildProcess) {
  try {
    if (child.pid) return void process.kill(-child.pid, 'SIGKILL');
  } catch {
    // No such group any more (all of it has ended): nothing left to stop.
  }
  child.kill('SIGKILL');
}

interface PendingRun {
  resolve: (result: RunResult) => void;
  reject: (error: unknown) => void;
  again: () => Promise<void>;
}

/** runTool's own default, and how much longer than a run's timeout the helper may take to answer. */
const DEFAULT_TIMEOUT_MS = 120_000;
const HELPER_GRACE_MS = 5_000;
/** After this many helpers died, runs start in this process for good. */
const MAX_FAILURES = 3;
const EXTENSION = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

export type ToolRequest =
  | { run: number; binary: string; args: readonly string[]; options: Omit<RunOptions, 'signal'> }
  | { cancel: number };

export type ToolAnswer =
  | { id: number; result: { stdout: Uint8Array; stderr: string; durationMs: number } }
  | { id: number; error: { code: MediaErrorCode; message: string; retryable: boolean; stderr?: string | undefined } };
