import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, chmod, copyFile, lstat, mkdir, rename, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MediaError } from './errors.ts';
import type { RunOptions, RunResult } from './ffmpeg.ts';

/**
 * Which ffmpeg and ffprobe this process runs. A system ffmpeg (Debian's 5.x in the Docker image)
 * is preferred: it is newer, dynamically linked and has xfade. The npm static binaries
 * (@ffmpeg-installer 4.1, @ffprobe-installer 5.2) are the fallback that makes `npm ci` enough on a
 * machine without one; everything in src/media sticks to filters that 4.1 has.
 */
export interface MediaTools {
  ffmpeg: string;
  ffprobe: string;
  /** Where ffmpeg came from; an explicit path counts as 'npm' only when it is the npm binary. */
  source: 'system' | 'npm';
  ffprobeSource: 'system' | 'npm';
  /** The first line of `ffmpeg -version`. */
  version: string;
  /** ffmpeg >= 4.3 has the xfade filter; nothing here needs it, but callers may. */
  hasXfade: boolean;
  /** How runs start (default: runTool, from this process); the media service runs them from a helper. */
  run?: ((binary: string, args: readonly string[], options?: RunOptions) => Promise<RunResult>) | undefined;
}

export interface MediaToolsOptions {
  /** Explicit binaries (e.g. from configuration), used as given: an error if they do not run. */
  ffmpegPath?: string | null | undefined;
  ffprobePath?: string | null | undefined;
  /**
   * 'auto' (default): a system binary on the search path first, then npm's. 'npm-first': npm's
   * static build first, for short jobs such as a poster's one frame, where starting the tool is
   * most of the cost: a system build loads some 200 shared libraries (about 0.15 s of CPU on each
   * run, against 0.03 s for the static one).
   */
  prefer?: 'auto' | 'system' | 'npm' | 'npm-first' | undefined;
  /** Directories to search for system binaries, PATH-style. Default: this process's PATH. */
  searchPath?: string | undefined;
}

type Tool = 'ffmpeg' | 'ffprobe';
const NPM_PACKAGES: Record<Tool, string> = { ffmpeg: '@ffmpeg-installer', ffprobe: '@ffprobe-installer' };
const exe = (tool: Tool) => (process.platform === 'win32' ? `${tool}.exe` : tool);

/**
 * The one place the media layer looks at the environment: PATH is how "a system ffmpeg" is
 * defined, and the locator's callers can replace it with `searchPath`.
 */
function defaultSearchPath(): string {
  return process.env.PATH ?? '';
}

const cache = new Map<string, Promise<MediaTools>>();

/** Finds (once per option set, then cached) and checks the binaries. */
export function mediaTools(options: MediaToolsOptions = {}): Promise<MediaTools> {
  const key = JSON.stringify([options.ffmpegPath, options.ffprobePath, options.prefer, options.searchPath]);
  let found = cache.get(key);
  if (!found) {
    found = locate(options);
    // A failure is not cached: the binary may be installed a moment later.
    found.catch(() => cache.delete(key));
    cache.set(key, found);
  }
  return found;
}

async function locate(options: MediaToolsOptions): Promise<MediaTools> {
  const [ffmpeg, ffprobe] = await Promise.all([
    pick('ffmpeg', options.ffmpegPath, options),
    pick('ffprobe', options.ffprobePath, options),
  ]);
  const filters = await run(ffmpeg.file, ['-hide_banner', '-filters']).catch(() => '');
  return {
    ffmpeg: ffmpeg.file,
    ffprobe: ffprobe.file,
    source: ffmpeg.source,
    ffprobeSource: ffprobe.source,
    version: ffmpeg.version,
    hasXfade: /^\s*\S+\s+xfade\s/m.test(filters),
  };
}

async function pick(tool: Tool, explicit: string | null | undefined, options: MediaToolsOptions) {
  const npmFile = npmBinary(tool);
  if (explicit) {
    const file = path.resolve(explicit);
    const version = await versionLine(file);
    if (!version) throw new MediaError('MEDIA_TOOL_NOT_FOUND', `${tool} at ${file} does not run (\`${tool} -version\` failed).`);
    return { file, version, source: file === npmFile ? ('npm' as const) : ('system' as const) };
  }
  const prefer = options.prefer ?? 'auto';
  const fromNpm = async () => {
    const file = npmFile && (await ensureExecutable(npmFile));
    const version = file && (await versionLine(file));
    return file && version ? { file, version, source: 'npm' as const } : null;
  };
  const quick = prefer === 'npm-first' ? await fromNpm() : null;
  if (quick) return quick;
  if (prefer !== 'npm') {
    const file = await onSearchPath(exe(tool), options.searchPath ?? defaultSearchPath());
    const version = file && (await versionLine(file));
    // Every render here encodes H.264 with libx264, which minimal or LGPL-only builds lack.
    if (file && version && (tool === 'ffprobe' || (await hasEncoder(file, 'libx264')))) {
      return { file, version, source: 'system' as const };
    }
  }
  const fallback = prefer !== 'system' && prefer !== 'npm-first' ? await fromNpm() : null;
  if (fallback) return fallback;
  throw new MediaError(
    'MEDIA_TOOL_NOT_FOUND',
    prefer === 'system'
      ? `No ${tool} on the search path.`
      : `No usable ${tool}: none on the search path, and ${NPM_PACKAGES[tool]}/${process.platform}-${process.arch} is not installed or does not run.`,
  );
}

function npmBinary(tool: Tool): string | null {
  try {
    const require = createRequire(import.meta.url);
    const manifest = require.resolve(`${NPM_PACKAGES[tool]}/${process.platform}-${process.arch}/package.json`);
    return path.join(path.dirname(manifest), exe(tool));
  } catch {
    return null;
  }
}

async function onSearchPath(name: string, searchPath: string): Promise<string | null> {
  for (const dir of searchPath.split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, name);
    if (await isExecutableFile(file)) return file;
  }
  return null;
}

async function isExecutableFile(file: string) {
  try {
    await access(file, constants.X_OK);
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/**
 * npm 11 skips the installers' `chmod u+x` postinstall, and tarballs do not always carry the run
 * bit for group/other (ffprobe-installer's does not), so a process running as another user than
 * the one that ran `npm ci` may not execute the file. Set the bit when we own it; otherwise run a
 * private copy.
 */
async function ensureExecutable(file: string): Promise<string | null> {
  if (await isExecutableFile(file)) return file;
  let info;
  try {
    info = await stat(file);
  } catch {
    return null;
  }
  if (process.getuid && info.uid === process.getuid()) {
    try {
      await chmod(file, info.mode | 0o100);
      return file;
    } catch {
      /* fall through to a copy */
    }
  }
  const uid = process.getuid?.() ?? -1;
  const dir = path.join(tmpdir(), `segue-media-tools-${uid}`);
  const copy = path.join(dir, `${path.basename(file)}-${info.size}-${Math.trunc(info.mtimeMs)}`);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // The temp directory is shared: run nothing from a directory someone else could have made.
    const owned = await lstat(dir);
    if (!owned.isDirectory() || (uid !== -1 && owned.uid !== uid) || (owned.mode & 0o022) !== 0) return null;
    if (await isExecutableFile(copy)) return copy;
    const partial = `${copy}.${process.pid}.tmp`;
    await copyFile(file, partial);
    await chmod(partial, 0o700);
    await rename(partial, copy);
    return copy;
  } catch {
    return null;
  }
}

async function hasEncoder(ffmpeg: string, name: string) {
  const encoders = await run(ffmpeg, ['-hide_banner', '-encoders']).catch(() => '');
  return new RegExp(`^\\s*\\S+\\s+${name}\\s`, 'm').test(encoders);
}

async function versionLine(file: string): Promise<string | null> {
  try {
    const out = await run(file, ['-version']);
    return out.split('\n')[0]?.trim() || null;
  } catch {
    return null;
  }
}

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 15_000, maxBuffer: 4 * 1024 * 1024 }, (error, stdout) =>
      error ? reject(error) : resolve(stdout),
    );
  });
}
