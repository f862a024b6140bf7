import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { assertReadableFile, partialPathOf } from './encode.ts';
import { isMediaError, MediaError } from './errors.ts';
import { runFfmpeg } from './ffmpeg.ts';
import type { MediaTools } from './tools.ts';

/** One poster to render: a video, and the .jpg path its first frame goes to. */
export interface PosterJob {
  video: string;
  output: string;
}

/** How posters are rendered (the same for every poster of one call). */
export interface PosterSettings {
  /** Scale to this width (height follows the aspect ratio); default: the video's own size. */
  width?: number | undefined;
  /** JPEG quality as ffmpeg's qscale: 2 (best) to 31 (worst); default 3. */
  quality?: number | undefined;
  tools?: MediaTools | undefined;
  /** For each ffmpeg run. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

export interface PosterOptions extends PosterJob, PosterSettings {}

/**
 * Posters one ffmpeg run renders at most. A run's start costs more than a small video's frame
 * (the static ffmpeg on 2 cores, the emulator's 160x90 fixture: 23 ms of CPU for one poster
 * alone, 10.8 ms each in runs of 4, 9.4 in runs of 8; a 1080p video: 127, 117 and 114 ms). Each
 * input holds its own decoder, so a run of 4 1080p videos peaks near 120 MB, of 8 near 230.
 */
export const POSTERS_PER_RUN = 4;

/** The first frame as a JPEG: the still a player shows before playback (`<video poster>`). */
export async function renderPoster(options: PosterOptions): Promise<{ output: string }> {
  const [outcome] = await renderPosters([options], options);
  if (outcome instanceof Error) throw outcome;
  return outcome!;
}

/**
 * The first frame of each video as a JPEG, up to POSTERS_PER_RUN in one ffmpeg run. Each poster
 * has its own outcome: its output, or the MediaError that kept it from being written. A run
 * that fails is tried again poster by poster, so one bad video costs the others nothing.
 */
export async function renderPosters(jobs: readonly PosterJob[], settings: PosterSettings = {}): Promise<Array<{ output: string } | MediaError>> {
  const quality = settings.quality ?? 3;
  if (!Number.isInteger(quality) || quality < 2 || quality > 31) {
    throw new MediaError('MEDIA_INVALID_INPUT', `quality must be an integer from 2 to 31, not ${quality}.`);
  }
  const outcomes: Array<{ output: string } | MediaError> = new Array(jobs.length);
  const readable: number[] = [];
  await Promise.all(
    jobs.map(async (job, i) => {
      try {
        await assertReadableFile(job.video, 'video');
        readable.push(i);
      } catch (error) {
        outcomes[i] = asMediaError(error);
      }
    }),
  );
  readable.sort((a, b) => a - b);
  for (let k = 0; k < readable.length; k += POSTERS_PER_RUN) {
    const run = readable.slice(k, k + POSTERS_PER_RUN);
    const results = await renderRun(run.map((i) => jobs[i]!), { ...settings, quality });
    run.forEach((i, j) => (outcomes[i] = results[j]!));
  }
  return outcomes;
}

async function renderRun(jobs: readonly PosterJob[], settings: PosterSettings & { quality: number }): Promise<Array<{ output: string } | MediaError>> {
  const filters = [
    ...(settings.width ? [`scale=${Math.round(settings.width)}:-2`] : []),
    // Full-range YUV: ffmpeg 4.1's MJPEG encoder refuses limited-range yuv420p without -strict.
    'format=yuvj420p',
  ].join(',');
  // Written aside and renamed into place, so a reader never sees half a poster.
  const targets = jobs.map((job) => path.resolve(job.output));
  const partials = targets.map(partialPathOf);
  await Promise.all([...new Set(targets.map((t) => path.dirname(t)))].map((dir) => mkdir(dir, { recursive: true })));
  try {
    await runFfmpeg(
      [
        // One thread each for decoding, filtering and encoding: for a single frame ffmpeg's
        // default (frame threads per core) only adds thread start-up, about a third of a poster's
        // CPU (bench/media.ts on 2 cores: 9.8-11.8 -> 6.4-8.0 ms of ffmpeg CPU per poster).
        '-filter_threads', '1',
        // Key frames only: a video's first frame is one, and the decoder then skips the frames
        // it would otherwise decode before showing it (B-frames): a 1080p poster 127 -> 92 ms.
        ...jobs.flatMap((job) => ['-threads', '1', '-skip_frame', 'nokey', '-i', job.video]),
        ...partials.flatMap((partial, k) => [
          '-map', `${k}:v:0`, '-frames:v', '1', '-vf', filters, '-q:v', String(settings.quality), '-threads', '1', '-f', 'image2', '-c:v', 'mjpeg', partial,
        ]),
      ],
      { tools: settings.tools, timeoutMs: settings.timeoutMs ?? 30_000, signal: settings.signal },
    );
  } catch (error) {
    await Promise.all(partials.map((partial) => rm(partial, { force: true })));
    const failure = asMediaError(error);
    // Alone, each poster gets its own verdict; an aborted run is over for all of them.
    if (jobs.length === 1 || failure.code === 'MEDIA_ABORTED') return jobs.map(() => failure);
    const alone: Array<{ output: string } | MediaError> = [];
    for (const job of jobs) alone.push(...(await renderRun([job], settings)));
    return alone;
  }
  return Promise.all(
    targets.map(async (target, k) => {
      const written = await stat(partials[k]!).then((s) => s.size > 0, () => false);
      if (!written) {
        await rm(partials[k]!, { force: true });
        return new MediaError('MEDIA_TOOL_FAILED', `ffmpeg found no frame to make a poster of in ${jobs[k]!.video}.`, { retryable: false });
      }
      await rename(partials[k]!, target);
      return { output: target };
    }),
  );
}

const asMediaError = (error: unknown): MediaError =>
  isMediaError(error) ? error : new MediaError('MEDIA_TOOL_FAILED', error instanceof Error ? error.message : String(error), { cause: error, retryable: true });
