import { readFile } from 'node:fs/promises';

/**
 * Real, playable MP4 clips (testsrc, 160x90, x264) standing in for Kling's output, one per
 * duration the model accepts, so callers can probe and concatenate what they download.
 * Made once with:
 *   ffmpeg -f lavfi -i testsrc=size=160x90:rate=12 -t 5 -pix_fmt yuv420p -c:v libx264 \
 *     -preset veryslow -crf 40 -movflags +faststart fixtures/5s.mp4   (and -t 10 for 10s.mp4)
 */
export type ClipDuration = '5' | '10';
export type Fixtures = Record<ClipDuration, Buffer>;

export async function loadFixtures(): Promise<Fixtures> {
  const [five, ten] = await Promise.all([
    readFile(new URL('./fixtures/5s.mp4', import.meta.url)),
    readFile(new URL('./fixtures/10s.mp4', import.meta.url)),
  ]);
  return { '5': five, '10': ten };
}
