import { assertReadableFile, writeAtomically } from './encode.ts';
import { MediaError } from './errors.ts';
import { runFfmpeg } from './ffmpeg.ts';
import type { MediaTools } from './tools.ts';

export interface PosterOptions {
  video: string;
  /** A .jpg path. */
  output: string;
  /** Scale to this width (height follows the aspect ratio); default: the video's own size. */
  width?: number | undefined;
  /** JPEG quality as ffmpeg's qscale: 2 (best) to 31 (worst); default 3. */
  quality?: number | undefined;
  tools?: MediaTools | undefined;
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** The first frame as a JPEG: the still a player shows before playback (`<video poster>`). */
export async function renderPoster(options: PosterOptions): Promise<{ output: string }> {
  await assertReadableFile(options.video, 'video');
  const quality = options.quality ?? 3;
  if (!Number.isInteger(quality) || quality < 2 || quality > 31) {
    throw new MediaError('MEDIA_INVALID_INPUT', `quality must be an integer from 2 to 31, not ${quality}.`);
  }
  const filters = [
    ...(options.width ? [`scale=${Math.round(options.width)}:-2`] : []),
    // Full-range YUV: ffmpeg 4.1's MJPEG encoder refuses limited-range yuv420p without -strict.
    'format=yuvj420p',
  ];
  await writeAtomically(options.output, (partial) =>
    runFfmpeg(
      // One thread each for decoding, filtering and encoding: for a single frame ffmpeg's
      // default (frame threads per core) only adds thread start-up, about a third of a poster's
      // CPU (bench/media.ts on 2 cores: 9.8-11.8 -> 6.4-8.0 ms of ffmpeg CPU per poster).
      ['-filter_threads', '1', '-threads', '1', '-i', options.video, '-frames:v', '1', '-vf', filters.join(','), '-q:v', String(quality), '-threads', '1', '-f', 'image2', '-c:v', 'mjpeg', partial],
      { tools: options.tools, timeoutMs: options.timeoutMs ?? 30_000, signal: options.signal },
    ),
  );
  return { output: options.output };
}
