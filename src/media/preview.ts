import { assertReadableFile, fitFilter, frameSettings, h264Args, num, writeAtomically } from './encode.ts';
import { MediaError } from './errors.ts';
import { runFfmpeg } from './ffmpeg.ts';
import type { MediaTools } from './tools.ts';

/**
 * A local stand-in for a generated transition: an MP4 of the requested length that moves from
 * the front image to the tail image, for development without a fal account and for the demo.
 * Built only from filters ffmpeg 4.1 has (no xfade): overlay with an alpha fade, a moving mask,
 * zoompan.
 */
export const PREVIEW_TRANSITIONS = ['morph', 'crossfade', 'wipe', 'zoom'] as const;
export type PreviewTransition = (typeof PREVIEW_TRANSITIONS)[number];

export interface PreviewOptions {
  frontImage: string;
  tailImage: string;
  /** Kling renders 5 or 10 s; anything up to 60 s works here. */
  durationSeconds: number;
  /** morph (default) and crossfade blend, wipe reveals left to right, zoom pushes in then blends. Unknown: crossfade. */
  transitionType?: string | null | undefined;
  output: string;
  width?: number | undefined;
  height?: number | undefined;
  fps?: number | undefined;
  tools?: MediaTools | undefined;
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

export interface PreviewResult {
  output: string;
  durationSeconds: number;
  width: number;
  height: number;
  fps: number;
  /** The transition actually drawn, after defaults and fallbacks. */
  transition: PreviewTransition;
}

export function previewTransition(type: string | null | undefined): PreviewTransition {
  const wanted = (type ?? 'morph').trim().toLowerCase();
  return (PREVIEW_TRANSITIONS as readonly string[]).includes(wanted) ? (wanted as PreviewTransition) : 'crossfade';
}

export async function renderPreview(options: PreviewOptions): Promise<PreviewResult> {
  const { width, height, fps } = frameSettings(options);
  const duration = options.durationSeconds;
  if (!Number.isFinite(duration) || duration <= 0 || duration > 60) {
    throw new MediaError('MEDIA_INVALID_INPUT', `durationSeconds must be above 0 and at most 60, not ${duration}.`);
  }
  await assertReadableFile(options.frontImage, 'frontImage');
  await assertReadableFile(options.tailImage, 'tailImage');
  const transition = previewTransition(options.transitionType);
  const graph = previewGraph({ transition, width, height, fps, duration });

  await writeAtomically(options.output, (partial) =>
    runFfmpeg(
      [
        '-i', options.frontImage,
        '-i', options.tailImage,
        '-filter_complex', graph,
        '-map', '[out]',
        '-t', num(duration),
        ...h264Args(fps),
        '-an',
        '-f', 'mp4',
        partial,
      ],
      { tools: options.tools, timeoutMs: options.timeoutMs ?? 180_000, signal: options.signal },
    ),
  );
  return { output: options.output, durationSeconds: duration, width, height, fps, transition };
}

interface GraphInput {
  transition: PreviewTransition;
  width: number;
  height: number;
  fps: number;
  duration: number;
}

/**
 * The filter graph: inputs 0 (front) and 1 (tail) in, [out] out. Each image is decoded and scaled
 * once, then repeated by `loop` (cheaper than `-loop 1`, which decodes and scales every frame).
 * Both ends hold still for a moment so the first frame is the front image and the last the tail.
 */
export function previewGraph({ transition, width: W, height: H, fps, duration: D }: GraphInput): string {
  const frames = Math.round(D * fps);
  const hold = Math.min(0.5, D / 10);
  const still = (input: number, label: string) =>
    `[${input}:v]trim=end_frame=1,${fitFilter(W, H)},` +
    // An image's time base is 1/25: N/(fps*TB) would round there, so set 1/fps first.
    `loop=loop=${frames - 1}:size=1:start=0,settb=1/${fps},setpts=N[${label}]`;
  const fadeIn = (start: number, length: number) =>
    `format=yuva420p,fade=t=in:st=${num(start)}:d=${num(length)}:alpha=1`;
  const over = '[a][b]overlay=shortest=1:format=yuv420,format=yuv420p[out]';

  switch (transition) {
    case 'morph':
    case 'crossfade':
      return [still(0, 'a'), `${still(1, 'tail')};[tail]${fadeIn(hold, D - 2 * hold)}[b]`, over].join(';');

    case 'wipe': {
      // A white bar slides over black: that mask is the tail's alpha, so the tail is revealed
      // from the left edge while the front stays put (a slide would move the picture instead).
      const progress = `clip((t-${num(hold)})/${num(D - 2 * hold)},0,1)`;
      return [
        still(0, 'a'),
        still(1, 'tail'),
        `color=c=black:s=${W}x${H}:r=${fps}:d=${num(D)},format=gray[maskbg]`,
        `color=c=white:s=${W}x${H}:r=${fps}:d=${num(D)},format=gray[maskbar]`,
        `[maskbg][maskbar]overlay=x='-W+W*${progress}':y=0:eval=frame,` +
          // Limited-range white is 235, not 255: force a hard 0/255 mask so the end is all tail.
          `lut=c0='if(gt(val,127),255,0)'[mask]`,
        '[tail][mask]alphamerge[b]',
        over,
      ].join(';');
    }

    case 'zoom': {
      // zoompan works on a doubled picture: it crops whole pixels, and at the output size that
      // makes a slow zoom visibly judder.
      const zoomEnd = 1.35;
      const blendStart = D * 0.45;
      return [
        `[0:v]trim=end_frame=1,${fitFilter(W, H)},scale=${W * 2}:${H * 2},` +
          `zoompan=z='1+${num(zoomEnd - 1)}*on/${Math.max(1, frames - 1)}':` +
          // One input frame becomes d output frames, already at 1/fps time base.
          `x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':d=${frames}:s=${W}x${H}:fps=${fps},` +
          'setsar=1,format=yuv420p[a]',
        `${still(1, 'tail')};[tail]${fadeIn(blendStart, D - hold - blendStart)}[b]`,
        over,
      ].join(';');
    }
  }
}
