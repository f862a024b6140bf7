import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MediaError } from '../src/media/errors.ts';
import { mediaTools, probe, runFfmpeg, runTool, type MediaTools } from '../src/media/ffmpeg.ts';
import { POSTERS_PER_RUN, renderPoster, renderPosters } from '../src/media/poster.ts';
import { renderPreview } from '../src/media/preview.ts';

// SEGUE_MEDIA_TOOLS=npm runs the suite on the npm ffmpeg 4.1 even where a system ffmpeg exists.
const prefer = (process.env.SEGUE_MEDIA_TOOLS ?? 'auto') as 'auto' | 'system' | 'npm';
const front = path.resolve('assets/samples/front.png');
const tail = path.resolve('assets/samples/tail.png');
const W = 320;
const H = 180;
const FPS = 24;

let tools: MediaTools;
let dir: string;
let frontThumb: Buffer;
let tailThumb: Buffer;

beforeAll(async () => {
  tools = await mediaTools({ prefer });
  dir = await mkdtemp(path.join(tmpdir(), 'segue-media-preview-'));
  frontThumb = await imageThumb(front);
  tailThumb = await imageThumb(tail);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

// Pictures are compared as 32x18 RGB thumbnails: small enough to ignore encoder noise, large
// enough to tell a sunrise from a night sky and a left half from a right half.
const TW = 32;
const TH = 18;
const FRAME = TW * TH * 3;

async function imageThumb(image: string) {
  const fit = `scale=${W}:${H}:force_original_aspect_ratio=decrease,pad=${W}:${H}:(ow-iw)/2:(oh-ih)/2`;
  const { stdout } = await runFfmpeg(['-i', image, '-vf', `${fit},scale=${TW}:${TH}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], {
    tools,
    captureStdout: true,
  });
  return stdout;
}

async function videoThumbs(video: string) {
  const { stdout } = await runFfmpeg(['-i', video, '-vf', `scale=${TW}:${TH}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], {
    tools,
    captureStdout: true,
  });
  return Array.from({ length: stdout.length / FRAME }, (_, i) => stdout.subarray(i * FRAME, (i + 1) * FRAME));
}

/** Mean absolute difference per channel value (0-255), optionally over a band of columns. */
function difference(a: Buffer, b: Buffer, columns: [number, number] = [0, TW]) {
  let sum = 0;
  let n = 0;
  for (let y = 0; y < TH; y++) {
    for (let x = columns[0]; x < columns[1]; x++) {
      for (let c = 0; c < 3; c++) {
        const i = (y * TW + x) * 3 + c;
        sum += Math.abs(a[i]! - b[i]!);
        n++;
      }
    }
  }
  return sum / n;
}

describe('renderPreview', () => {
  describe.each(['morph', 'crossfade', 'wipe', 'zoom'])('%s', (transitionType) => {
    it.each([5, 10])(`renders a %i s H.264 MP4 that starts on the front image and ends on the tail image`, async (seconds) => {
      const output = path.join(dir, `${transitionType}-${seconds}.mp4`);
      const result = await renderPreview({ frontImage: front, tailImage: tail, durationSeconds: seconds, transitionType, output, width: W, height: H, tools });
      expect(result.transition).toBe(transitionType);

      const info = await probe(output, { tools });
      expect(info.durationSeconds).toBeGreaterThan(seconds - 0.1);
      expect(info.durationSeconds).toBeLessThan(seconds + 0.1);
      expect(info).toMatchObject({ videoCodec: 'h264', pixelFormat: 'yuv420p', width: W, height: H, fps: FPS, hasAudio: false });
      // +faststart: the index (moov) comes before the media data, so playback starts at once.
      const bytes = await readFile(output);
      expect(bytes.indexOf('moov')).toBeLessThan(bytes.indexOf('mdat'));

      const frames = await videoThumbs(output);
      expect(frames).toHaveLength(seconds * FPS);
      const first = frames[0]!;
      const last = frames.at(-1)!;
      expect(difference(first, frontThumb)).toBeLessThan(6);
      expect(difference(first, tailThumb)).toBeGreaterThan(40);
      expect(difference(last, tailThumb)).toBeLessThan(6);
      expect(difference(last, frontThumb)).toBeGreaterThan(40);

      const middle = frames[Math.floor(frames.length / 2)]!;
      if (transitionType === 'wipe') {
        // Half way, the tail has been revealed from the left up to the middle.
        expect(difference(middle, tailThumb, [0, 12])).toBeLessThan(6);
        expect(difference(middle, frontThumb, [20, 32])).toBeLessThan(6);
      } else {
        // Half way, the picture is neither image yet.
        expect(difference(middle, frontThumb)).toBeGreaterThan(8);
        expect(difference(middle, tailThumb)).toBeGreaterThan(8);
      }
    });
  });

  it('falls back to a crossfade for an unknown transition type, and defaults to morph', async () => {
    const unknown = await renderPreview({ frontImage: front, tailImage: tail, durationSeconds: 1, transitionType: 'spiral', output: path.join(dir, 'spiral.mp4'), width: W, height: H, tools });
    expect(unknown.transition).toBe('crossfade');
    const none = await renderPreview({ frontImage: front, tailImage: tail, durationSeconds: 1, output: path.join(dir, 'default.mp4'), width: W, height: H, tools });
    expect(none.transition).toBe('morph');
  });

  it('letterboxes images of another shape into the requested size', async () => {
    const tall = path.join(dir, 'tall.png');
    await runFfmpeg(['-f', 'lavfi', '-i', 'color=c=red:s=90x160', '-frames:v', '1', tall], { tools });
    const output = path.join(dir, 'tall.mp4');
    await renderPreview({ frontImage: tall, tailImage: tail, durationSeconds: 1, output, width: W, height: H, tools });
    expect(await probe(output, { tools })).toMatchObject({ width: W, height: H });
    const first = (await videoThumbs(output))[0]!;
    const pixel = (x: number, y: number) => [...first.subarray((y * TW + x) * 3, (y * TW + x) * 3 + 3)];
    expect(pixel(1, 9).every((v) => v < 20)).toBe(true); // black bar on the left
    expect(pixel(16, 9)[0]).toBeGreaterThan(200); // the red picture in the middle
  });

  it('rejects bad input with typed errors and leaves no file behind', async () => {
    const output = path.join(dir, 'bad.mp4');
    const odd = renderPreview({ frontImage: front, tailImage: tail, durationSeconds: 5, output, width: 321, height: H, tools });
    await expect(odd).rejects.toMatchObject({ name: 'MediaError', code: 'MEDIA_INVALID_INPUT' });
    const missing = renderPreview({ frontImage: path.join(dir, 'nope.png'), tailImage: tail, durationSeconds: 5, output, tools });
    await expect(missing).rejects.toMatchObject({ code: 'MEDIA_INVALID_INPUT' });

    const notAnImage = path.join(dir, 'not-an-image.png');
    await writeFile(notAnImage, 'hello');
    const error = await renderPreview({ frontImage: notAnImage, tailImage: tail, durationSeconds: 1, output, width: W, height: H, tools }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MediaError);
    expect(error).toMatchObject({ code: 'MEDIA_TOOL_FAILED', retryable: false });
    expect((error as MediaError).stderr).toBeTruthy();
    await expect(readFile(output)).rejects.toMatchObject({ code: 'ENOENT' });
    const leftovers = (await readdir(dir)).filter((f) => f.startsWith('bad.mp4'));
    expect(leftovers).toEqual([]);
  });
});

describe('renderPoster', () => {
  it('writes the first frame as a JPEG of the video size', async () => {
    const video = path.join(dir, 'poster-source.mp4');
    await renderPreview({ frontImage: front, tailImage: tail, durationSeconds: 1, transitionType: 'wipe', output: video, width: W, height: H, tools });
    const output = path.join(dir, 'poster.jpg');
    await renderPoster({ video, output, tools });
    const bytes = await readFile(output);
    expect([...bytes.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
    expect(await probe(output, { tools })).toMatchObject({ videoCodec: 'mjpeg', width: W, height: H });
    expect(difference(await imageThumb(output), frontThumb)).toBeLessThan(6);

    const small = path.join(dir, 'poster-small.jpg');
    await renderPoster({ video, output: small, width: 160, tools });
    expect(await probe(small, { tools })).toMatchObject({ width: 160, height: 90 });
  });
});

describe('renderPosters', () => {
  /** The tools, with every run they start noted (its arguments). */
  const counted = () => {
    const runs: string[][] = [];
    const run: NonNullable<MediaTools['run']> = (binary, args, options) => {
      runs.push([...args]);
      return (tools.run ?? runTool)(binary, args, options);
    };
    return { runs, tools: { ...tools, run } };
  };

  it('renders several posters in one ffmpeg run, each the first frame of its own video', async () => {
    // Two videos whose first frames differ (front -> tail, tail -> front), so a poster that went
    // to another video's output shows.
    const fromFront = path.join(dir, 'batch-front.mp4');
    const fromTail = path.join(dir, 'batch-tail.mp4');
    await renderPreview({ frontImage: front, tailImage: tail, durationSeconds: 1, output: fromFront, width: W, height: H, tools });
    await renderPreview({ frontImage: tail, tailImage: front, durationSeconds: 1, output: fromTail, width: W, height: H, tools });
    const videos = [fromTail, fromFront, fromTail, fromFront, fromFront];
    const { runs, tools: countedTools } = counted();
    const outcomes = await renderPosters(
      videos.map((video, i) => ({ video, output: path.join(dir, 'batch', `p${i}.jpg`) })),
      { tools: countedTools },
    );
    // Five posters: one full run and one of the rest.
    expect(POSTERS_PER_RUN).toBe(4);
    expect(runs.map((args) => args.filter((a) => a === '-i').length)).toEqual([4, 1]);
    for (const [i, video] of videos.entries()) {
      const output = path.join(dir, 'batch', `p${i}.jpg`);
      expect(outcomes[i]).toEqual({ output });
      const thumb = await imageThumb(output);
      expect(difference(thumb, video === fromFront ? frontThumb : tailThumb)).toBeLessThan(6);
      // The same poster as a run of its own makes.
      const alone = path.join(dir, 'batch', `alone-${i}.jpg`);
      await renderPoster({ video, output: alone, tools });
      expect(difference(thumb, await imageThumb(alone))).toBeLessThan(1);
    }
    expect((await readdir(path.join(dir, 'batch'))).filter((f) => f.endsWith('.part'))).toEqual([]);
  });

  it('gives a bad video its own error and still renders the others', async () => {
    const good = path.join(dir, 'batch-good.mp4');
    await renderPreview({ frontImage: front, tailImage: tail, durationSeconds: 1, output: good, width: W, height: H, tools });
    const broken = path.join(dir, 'batch-broken.mp4');
    await writeFile(broken, 'not a video');
    const missing = path.join(dir, 'batch-missing.mp4');
    const out = (name: string) => path.join(dir, 'bad-batch', `${name}.jpg`);
    const { runs, tools: countedTools } = counted();
    const outcomes = await renderPosters(
      [
        { video: good, output: out('good-1') },
        { video: broken, output: out('broken') },
        { video: missing, output: out('missing') },
        { video: good, output: out('good-2') },
      ],
      { tools: countedTools },
    );
    expect(outcomes[0]).toEqual({ output: out('good-1') });
    expect(outcomes[1]).toBeInstanceOf(MediaError);
    expect(outcomes[1]).toMatchObject({ code: 'MEDIA_TOOL_FAILED' });
    expect(outcomes[2]).toMatchObject({ code: 'MEDIA_INVALID_INPUT' });
    expect(outcomes[3]).toEqual({ output: out('good-2') });
    expect(difference(await imageThumb(out('good-2')), frontThumb)).toBeLessThan(6);
    // The missing file never reached ffmpeg; the run of three failed on the broken one, and each
    // was then rendered alone.
    expect(runs.map((args) => args.filter((a) => a === '-i').length)).toEqual([3, 1, 1, 1]);
    expect((await readdir(path.join(dir, 'bad-batch'))).sort()).toEqual(['good-1.jpg', 'good-2.jpg']);
  });

  it('takes the first frame shown, also where a video starts between key frames', async () => {
    const source = path.join(dir, 'trim-source.mp4');
    await renderPreview({ frontImage: front, tailImage: tail, durationSeconds: 2, output: source, width: W, height: H, tools });
    // Cut without re-encoding half way through: the file keeps the frames from its key frame
    // on, and an edit list says to show them from 1 s.
    const trimmed = path.join(dir, 'trimmed.mp4');
    await runFfmpeg(['-ss', '1', '-i', source, '-c', 'copy', trimmed], { tools });
    const outcomes = await renderPosters([{ video: trimmed, output: path.join(dir, 'trimmed.jpg') }, { video: source, output: path.join(dir, 'untrimmed.jpg') }], { tools });
    expect(outcomes).toEqual([{ output: path.join(dir, 'trimmed.jpg') }, { output: path.join(dir, 'untrimmed.jpg') }]);
    // The frame at 1 s of the source, as ffmpeg decodes it there.
    const { stdout } = await runFfmpeg(['-i', source, '-ss', '1', '-frames:v', '1', '-vf', `scale=${TW}:${TH}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], { tools, captureStdout: true });
    const poster = await imageThumb(path.join(dir, 'trimmed.jpg'));
    expect(difference(poster, stdout)).toBeLessThan(6);
    // ...which is not the source's first frame.
    expect(difference(poster, frontThumb)).toBeGreaterThan(10);
  });

  it('gives every poster of a run that timed out the timeout, without running each again', async () => {
    const video = path.join(dir, 'timeout-source.mp4');
    await renderPreview({ frontImage: front, tailImage: tail, durationSeconds: 1, output: video, width: W, height: H, tools });
    const { runs, tools: countedTools } = counted();
    const outcomes = await renderPosters(
      [0, 1, 2].map((i) => ({ video, output: path.join(dir, 'timeout', `p${i}.jpg`) })),
      { tools: countedTools, timeoutMs: 1 },
    );
    expect(outcomes.map((o) => (o as MediaError).code)).toEqual(['MEDIA_TIMEOUT', 'MEDIA_TIMEOUT', 'MEDIA_TIMEOUT']);
    expect(runs).toHaveLength(1);
    expect(await readdir(path.join(dir, 'timeout'))).toEqual([]);
  });
});
