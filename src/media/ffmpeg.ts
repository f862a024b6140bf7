import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { MediaError, type MediaErrorCode } from './errors.ts';
import { mediaTools, type MediaTools } from './tools.ts';

export { mediaTools, type MediaTools, type MediaToolsOptions } from './tools.ts';

export interface RunOptions {
  /** Kill the process after this long (default 2 minutes). */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  cwd?: string | undefined;
  /** Keep stdout (ffprobe's JSON, raw frames); ffmpeg encodes write files and leave it off. */
  captureStdout?: boolean | undefined;
  /** Beyond this much stdout the process is killed (default 256 MB). */
  maxStdoutBytes?: number | undefined;
  /**
   * The niceness the program runs at (0-19; MEDIA_NICE): renders give way to the API, the
   * workers' tracking and PostgreSQL on a shared machine, and use what is left.
   */
  nice?: number | undefined;
}

export interface RunResult {
  stdout: Buffer;
  stderr: string;
  durationMs: number;
}

/** Signals that stop a process from outside (a service manager, the OOM killer, a CPU limit), not ones it raises by crashing. */
const STOP_SIGNALS: ReadonlySet<NodeJS.Signals> = new Set(['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGXCPU']);

// Enough to show why ffmpeg failed without holding a chatty encode's whole log.
const STDERR_KEEP = 16 * 1024;

/** Runs a binary with a timeout; a non-zero exit becomes a MediaError carrying stderr's tail. */
export function runTool(binary: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const { timeoutMs = 120_000, signal, cwd, captureStdout = false, maxStdoutBytes = 256 * 1024 * 1024, nice = 0 } = options;
  const name = path.basename(binary);
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new MediaError('MEDIA_ABORTED', `${name} was not started: aborted.`));
    const started = performance.now();
    const child = spawn(binary, args, { cwd, stdio: ['ignore', captureStdout ? 'pipe' : 'ignore', 'pipe'] });
    // Only ever lowered (a niceness is absolute, and a privileged worker could raise it); that
    // needs no privilege, and a system that refuses it runs the program as is.
    if (nice > 0 && child.pid !== undefined) {
      try {
        if (os.getPriority(child.pid) < nice) os.setPriority(child.pid, nice);
      } catch {
        /* runs at the parent's priority */
      }
    }
    const chunks: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = '';
    // Why we stopped it, if we did; the error is built at exit, when stderr is complete.
    let failure: { code: MediaErrorCode; message: string; retryable?: boolean; cause?: unknown } | null = null;
    const kill = (reason: NonNullable<typeof failure>) => {
      failure ??= reason;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(
      () => kill({ code: 'MEDIA_TIMEOUT', message: `${name} took longer than ${timeoutMs} ms.`, retryable: true }),
      timeoutMs,
    );
    const onAbort = () => kill({ code: 'MEDIA_ABORTED', message: `${name} was aborted.` });
    signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout?.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > maxStdoutBytes) kill({ code: 'MEDIA_TOOL_FAILED', message: `${name} wrote more than ${maxStdoutBytes} bytes.` });
      else chunks.push(chunk);
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_KEEP);
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      failure ??= {
        code: error.code === 'ENOENT' || error.code === 'EACCES' ? 'MEDIA_TOOL_NOT_FOUND' : 'MEDIA_TOOL_FAILED',
        message: `${name} could not be started: ${error.message}`,
        cause: error,
      };
    });
    child.on('close', (code, killedBy) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const tail = lastLines(stderr, 20) || undefined;
      if (failure) return reject(new MediaError(failure.code, failure.message, { ...failure, stderr: tail }));
      if (code !== 0) {
        // Stopped by a signal Segue did not send (a service manager stopping every process of the
        // machine, the OOM killer): not the input's fault, so another attempt may pass. A crash
        // (SIGSEGV, SIGABRT on a bad clip) is not a stop. ffmpeg catches SIGINT and SIGTERM and
        // exits 255 for them, saying nothing at -loglevel error; since 6.1 a real error may also
        // exit 255 (AVERROR(EPERM)'s low byte), but it says why on stderr.
        const stopped = (killedBy !== null && STOP_SIGNALS.has(killedBy)) || (code === 255 && name.startsWith('ffmpeg') && !stderr.trim());
        const why = lastLines(stderr) || (killedBy ? `killed by ${killedBy}` : stopped ? 'stopped by a signal' : 'no output');
        return reject(new MediaError('MEDIA_TOOL_FAILED', `${name} exited with ${code ?? killedBy}: ${why}`, { stderr: tail, retryable: stopped }));
      }
      resolve({ stdout: Buffer.concat(chunks), stderr, durationMs: performance.now() - started });
    });
  });
}

/** Quiet, non-interactive ffmpeg that overwrites its output: how every render here calls it. */
export async function runFfmpeg(args: readonly string[], options: RunOptions & { tools?: MediaTools | undefined } = {}) {
  const tools = options.tools ?? (await mediaTools());
  return (tools.run ?? runTool)(tools.ffmpeg, ['-hide_banner', '-nostdin', '-loglevel', 'error', '-y', ...args], options);
}

export interface ProbeResult {
  /** The container's duration (the longest stream); 0 for a still image. */
  durationSeconds: number;
  width: number | null;
  height: number | null;
  hasAudio: boolean;
  videoCodec: string | null;
  audioCodec: string | null;
  /** e.g. yuv420p, the one format every browser decodes. */
  pixelFormat: string | null;
  /** The video stream's average frame rate. */
  fps: number | null;
  /** The video stream's own duration where the container records it. */
  videoDurationSeconds: number | null;
  audioDurationSeconds: number | null;
}

interface FfprobeJson {
  format?: { duration?: string };
  streams?: Array<{
    codec_type?: string;
    codec_name?: string;
    pix_fmt?: string;
    width?: number;
    height?: number;
    avg_frame_rate?: string;
    r_frame_rate?: string;
    duration?: string;
    disposition?: { attached_pic?: number };
  }>;
}

export async function probe(file: string, options: RunOptions & { tools?: MediaTools | undefined } = {}): Promise<ProbeResult> {
  const tools = options.tools ?? (await mediaTools());
  let json: FfprobeJson;
  try {
    const { stdout } = await (tools.run ?? runTool)(
      tools.ffprobe,
      ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', file],
      { timeoutMs: 30_000, ...options, captureStdout: true },
    );
    json = JSON.parse(stdout.toString('utf8')) as FfprobeJson;
  } catch (error) {
    if (error instanceof MediaError && error.code !== 'MEDIA_TOOL_FAILED') throw error;
    throw new MediaError('MEDIA_PROBE_FAILED', `Cannot read ${path.basename(file)} as media: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const streams = json.streams ?? [];
  // Cover art in audio files shows up as a one-frame "video" stream.
  const video = streams.find((s) => s.codec_type === 'video' && !s.disposition?.attached_pic);
  const audio = streams.find((s) => s.codec_type === 'audio');
  return {
    durationSeconds: seconds(json.format?.duration) ?? 0,
    width: video?.width ?? null,
    height: video?.height ?? null,
    hasAudio: audio !== undefined,
    videoCodec: video?.codec_name ?? null,
    audioCodec: audio?.codec_name ?? null,
    pixelFormat: video?.pix_fmt ?? null,
    fps: rate(video?.avg_frame_rate) ?? rate(video?.r_frame_rate),
    videoDurationSeconds: seconds(video?.duration),
    audioDurationSeconds: seconds(audio?.duration),
  };
}

function seconds(value: string | undefined): number | null {
  const n = Number(value);
  return value !== undefined && Number.isFinite(n) ? n : null;
}

function rate(value: string | undefined): number | null {
  const [num, den] = (value ?? '').split('/').map(Number);
  return num && den ? num / den : null;
}

function lastLines(text: string, count = 3) {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-count)
    .join(' | ');
}
