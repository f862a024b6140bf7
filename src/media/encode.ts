import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { MediaError } from './errors.ts';

/** Shared by the renderers: one output format, one way to fit a picture, one way to write a file. */

export interface FrameOptions {
  width?: number | undefined;
  height?: number | undefined;
  fps?: number | undefined;
}

export function frameSettings(options: FrameOptions, defaults = { width: 640, height: 360, fps: 24 }) {
  const width = options.width ?? defaults.width;
  const height = options.height ?? defaults.height;
  const fps = options.fps ?? defaults.fps;
  // yuv420p halves chroma in both directions, so x264 refuses odd sizes.
  for (const [name, value] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(value) || value < 16 || value > 4096 || value % 2 !== 0) {
      throw new MediaError('MEDIA_INVALID_INPUT', `${name} must be an even integer from 16 to 4096, not ${value}.`);
    }
  }
  if (!Number.isInteger(fps) || fps < 1 || fps > 120) {
    throw new MediaError('MEDIA_INVALID_INPUT', `fps must be an integer from 1 to 120, not ${fps}.`);
  }
  return { width, height, fps };
}

/**
 * Fits any picture into width x height without distortion (letterbox or pillarbox in black), with
 * square pixels, so that inputs of any size can be blended, overlaid or concatenated.
 */
export const fitFilter = (width: number, height: number) =>
  `scale=${width}:${height}:force_original_aspect_ratio=decrease,` +
  `pad=${width}:${height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1,format=yuv420p`;

/**
 * H.264 in MP4 that browsers play: yuv420p (x264 would otherwise keep 4:4:4 from PNG inputs) and
 * the index up front (+faststart) so playback starts before the download ends.
 */
export const h264Args = (fps: number) => [
  '-r', String(fps),
  '-c:v', 'libx264',
  '-preset', 'veryfast',
  '-crf', '20',
  '-pix_fmt', 'yuv420p',
  '-movflags', '+faststart',
];

/**
 * Renders into a temporary file next to `output` and renames it into place, so a reader (a static
 * file server, a storage upload) never sees half a file, and a failed render leaves nothing.
 */
export async function writeAtomically<T>(output: string, render: (partial: string) => Promise<T>): Promise<T> {
  const target = path.resolve(output);
  await mkdir(path.dirname(target), { recursive: true });
  const partial = partialPathOf(target);
  try {
    const result = await render(partial);
    await rename(partial, target);
    return result;
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}

/** Where a render of `target` is written before it is renamed into place. */
export const partialPathOf = (target: string) => `${target}.${randomBytes(6).toString('hex')}.part`;

export async function assertReadableFile(file: string, what: string) {
  try {
    if ((await stat(file)).isFile()) return;
  } catch {
    /* reported below */
  }
  throw new MediaError('MEDIA_INVALID_INPUT', `${what} is not a readable file: ${file}`);
}

/** A number for an ffmpeg expression or option: fixed notation, no exponent, no trailing noise. */
export const num = (value: number) => String(Number(value.toFixed(6)));
