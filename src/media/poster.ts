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

type Outcome = { output: string } | MediaError;

/**
 * Posters one ffmpeg run renders at most. A run's start costs more than a small video's frame
 * (bench/media.ts, the static ffmpeg on 2 cores, the emulator's 160x90 fixture: 21.4 ms of
 * ffmpeg CPU for a poster alone, 9.9 ms each in runs of 4; a 1080p test video: 127 ms alone,
 * about 117 in runs of 4). Each input holds its own decoder, so a run of 4 1080p videos peaks
 * near 120 MB (one alone: 40 MB; a run of 8: 230 MB).
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
 * has its own outcome, at its job's index: its output, or the MediaError that kept it from being
 * written. A run that fails is tried again poster by poster, so a bad video fails alone; a run
 * that timed out or was aborted is not (each poster would wait out the timeout again): all its
 * posters get that error, and the caller tries them again on its own terms.
 */
export async function renderPosters(jobs: readonly PosterJob[], settings: PosterSettings = {}): Promise<Outcome[]> {
  const quality = settings.quality ?? 3;
  if (!Number.isInteger(quality) || quality < 2 || quality > 31) {
    throw new MediaError('MEDIA_INVALID_INPUT', `quality must be an integer from 2 to 31, not ${quality}.`);
  }
  const outcomes: Outcome[] = new Array(jobs.length);
  const ready: number[] = [];
  await Promise.all(
    jobs.map(async (job, i) => {
      try {
        await assertReadableFile(job.video, 'video');
        await mkdir(path.dirname(path.resolve(job.output)), { recursive: true });
        ready.push(i);
      } catch (error) {
        outcomes[i] = asMediaError(error);
      }
    }),
  );
  ready.sort((a, b) => a - b);
  for (let k = 0; k < ready.length; k += POSTERS_PER_RUN) {
    const run = ready.slice(k, k + POSTERS_PER_RUN);
    const results = await renderRun(run.map((i) => jobs[i]!), { ...settings, quality });
    run.forEach((i, j) => (outcomes[i] = results[j]!));
  }
  return outcomes;
}

/** Failures that another run would only repeat at the same cost: not tried poster by poster. */
const ENDS_THE_RUN = new Set(['MEDIA_ABORTED', 'MEDIA_TIMEOUT', 'MEDIA_TOOL_NOT_FOUND']);

async function renderRun(jobs: readonly PosterJob[], settings: PosterSettings & { quality: number }): Promise<Outcome[]> {
  const filters = [
    ...(settings.width ? [`scale=${Math.round(settings.width)}:-2`] : []),
    // Full-range YUV: ffmpeg 4.1's MJPEG encoder refuses limited-range yuv420p without -strict.
    'format=yuvj420p',
  ].join(',');
  // Written aside and renamed into place, so a reader never sees half a poster.
  const partials = jobs.map((job) => partialPathOf(path.resolve(job.output)));
  try {
    await runFfmpeg(
      [
        // One thread each for decoding, filtering and encoding: for a single frame ffmpeg's
        // default (frame threads per core) only adds thread start-up, about a third of a poster's
        // CPU (bench/media.ts on 2 cores: 9.8-11.8 -> 6.4-8.0 ms of ffmpeg CPU per poster).
        '-filter_threads', '1',
        ...jobs.flatMap((job) => ['-threads', '1', '-i', job.video]),
        ...partials.flatMap((partial, k) => [
          '-map', `${k}:v:0`, '-frames:v', '1', '-vf', filters, '-q:v', String(settings.quality), '-threads', '1', '-f', 'image2', '-c:v', 'mjpeg', partial,
        ]),
      ],
      { tools: settings.tools, timeoutMs: settings.timeoutMs ?? 30_000, signal: settings.signal },
    );
  } catch (error) {
    await Promise.all(partials.map((partial) => rm(partial, { force: true })));
    const failure = asMediaError(error);
    if (jobs.length === 1 || ENDS_THE_RUN.has(failure.code)) return jobs.map(() => failure);
    const alone: Outcome[] = [];
    for (const job of jobs) alone.push(...(await renderRun([job], settings)));
    return alone;
  }
  return Promise.all(jobs.map((job, k) => putInPlace(partials[k]!, job)));
}

/** A run's poster, renamed into place; or why it is not there (and no partial file left behind). */
async function putInPlace(partial: string, job: PosterJob): Promise<Outcome> {
  try {
    if (!(await stat(partial).then((s) => s.size > 0, () => false))) {
      throw new MediaError('MEDIA_TOOL_FAILED', `ffmpeg found no frame to make a poster of in ${job.video}.`);
    }
    await rename(partial, path.resolve(job.output));
    return { output: job.output };
  } catch (error) {
    await rm(partial, { force: true });
    return asMediaError(error);
  }
}

const asMediaError = (error: unknown): MediaError =>
  isMediaError(error) ? error : new MediaError('MEDIA_TOOL_FAILED', error instanceof Error ? error.message : String(error), { cause: error, retryable: true });
