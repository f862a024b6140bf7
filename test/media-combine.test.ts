import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { combineClips, type CombineClip, type CombineResult } from '../src/media/combine.ts';
import { mediaTools, probe, runFfmpeg, type MediaTools } from '../src/media/ffmpeg.ts';

// SEGUE_MEDIA_TOOLS=npm runs the suite on the npm ffmpeg 4.1 even where a system ffmpeg exists.
const prefer = (process.env.SEGUE_MEDIA_TOOLS ?? 'auto') as 'auto' | 'system' | 'npm';
const W = 320;
const H = 180;

let tools: MediaTools;
let dir: string;
let clips: CombineClip[];
let plain: CombineResult;
const plainOutput = () => path.join(dir, 'plain.mp4');

beforeAll(async () => {
  tools = await mediaTools({ prefer });
  dir = await mkdtemp(path.join(tmpdir(), 'segue-media-combine-'));
  const clip = async (name: string, color: string, size: string, fps: number, seconds: number, withAudio = false) => {
    const file = path.join(dir, name);
    await runFfmpeg(
      [
        '-f', 'lavfi', '-i', `color=c=${color}:s=${size}:r=${fps}:d=${seconds}`,
        ...(withAudio ? ['-f', 'lavfi', '-i', `sine=f=300:d=${seconds}`, '-c:a', 'aac'] : []),
        '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', file,
      ],
      { tools },
    );
    return file;
  };
  // Three sizes, three frame rates; the middle clip has a sound track of its own, which is dropped.
  clips = [
    { file: await clip('red.mp4', 'red', '320x180', 24, 2), subtitles: 'Sunrise over the sea' },
    { file: await clip('green.mp4', 'green', '400x300', 30, 1.5, true), subtitles: null },
    { file: await clip('blue.mp4', 'blue', '160x120', 15, 1), subtitles: '  Night falls,\n\n  the moon rises  ' },
  ];
  await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:d=2', '-c:a', 'aac', path.join(dir, 'short.m4a')], { tools });
  await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:d=9', '-c:a', 'libmp3lame', path.join(dir, 'long.mp3')], { tools });

  plain = await combineClips({
    clips,
    output: plainOutput(),
    subtitlesOutput: path.join(dir, 'plain.vtt'),
    srtOutput: path.join(dir, 'plain.srt'),
    width: W,
    height: H,
    tools,
  });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function frameAt(video: string, seconds: number) {
  const { stdout } = await runFfmpeg(['-ss', String(seconds), '-i', video, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], {
    tools,
    captureStdout: true,
  });
  expect(stdout.length).toBe(W * H * 3);
  return stdout;
}

const pixel = (frame: Buffer, x: number, y: number) => [...frame.subarray((y * W + x) * 3, (y * W + x) * 3 + 3)];

/** The share of pixels in rows [fromRow, toRow) that differ clearly (beyond encoder noise). */
function changed(a: Buffer, b: Buffer, fromRow: number, toRow: number) {
  let count = 0;
  for (let p = fromRow * W; p < toRow * W; p++) {
    const d = Math.abs(a[p * 3]! - b[p * 3]!) + Math.abs(a[p * 3 + 1]! - b[p * 3 + 1]!) + Math.abs(a[p * 3 + 2]! - b[p * 3 + 2]!);
    if (d > 60) count++;
  }
  return count / ((toRow - fromRow) * W);
}

/** Peak sample (0-1) of the output's audio between two times, decoded as mono 8 kHz. */
async function audioPeak(video: string, from: number, to: number) {
  const { stdout } = await runFfmpeg(['-i', video, '-map', '0:a', '-ac', '1', '-ar', '8000', '-f', 's16le', '-'], { tools, captureStdout: true });
  const samples = new Int16Array(stdout.buffer, stdout.byteOffset, stdout.length / 2);
  let peak = 0;
  for (let i = Math.round(from * 8000); i < Math.min(samples.length, Math.round(to * 8000)); i++) {
    peak = Math.max(peak, Math.abs(samples[i]!));
  }
  return peak / 32768;
}

describe('combineClips', () => {
  it('joins clips of different sizes and frame rates into one video as long as all of them', async () => {
    const info = await probe(plainOutput(), { tools });
    expect(info.durationSeconds).toBeGreaterThan(4.4);
    expect(info.durationSeconds).toBeLessThan(4.6);
    expect(info).toMatchObject({ videoCodec: 'h264', pixelFormat: 'yuv420p', width: W, height: H, fps: 24 });
    expect(plain.durationSeconds).toBeCloseTo(4.5, 1);
    expect(plain.clips).toEqual([
      { start: 0, end: 2 },
      { start: 2, end: 3.5 },
      { start: 3.5, end: 4.5 },
    ]);

    // In order, and each scaled to fit: the 4:3 clips are pillarboxed in black.
    const [red, green, blue] = await Promise.all([frameAt(plainOutput(), 1), frameAt(plainOutput(), 2.75), frameAt(plainOutput(), 4)]);
    expect(pixel(red!, 160, 90)[0]).toBeGreaterThan(200);
    expect(pixel(green!, 160, 90)[1]).toBeGreaterThan(100);
    expect(pixel(green!, 2, 90).every((v) => v < 20)).toBe(true);
    expect(pixel(blue!, 160, 90)[2]).toBeGreaterThan(200);
  });

  it('has no audio stream when no audio file is given, even if a clip had sound', async () => {
    expect(plain.hasAudio).toBe(false);
    expect((await probe(plainOutput(), { tools })).hasAudio).toBe(false);
  });

  it('writes one subtitle cue per clip with subtitles, spanning that clip, as WebVTT and SRT', async () => {
    expect(plain.cues).toEqual([
      { start: 0, end: 2, text: 'Sunrise over the sea' },
      { start: 3.5, end: 4.5, text: 'Night falls,\nthe moon rises' },
    ]);
    expect(await readFile(path.join(dir, 'plain.vtt'), 'utf8')).toBe(
      'WEBVTT\n\n1\n00:00:00.000 --> 00:00:02.000\nSunrise over the sea\n\n2\n00:00:03.500 --> 00:00:04.500\nNight falls,\nthe moon rises\n',
    );
    expect(await readFile(path.join(dir, 'plain.srt'), 'utf8')).toBe(
      '1\n00:00:00,000 --> 00:00:02,000\nSunrise over the sea\n\n2\n00:00:03,500 --> 00:00:04,500\nNight falls,\nthe moon rises\n',
    );
  });

  it('pads a shorter audio track with silence to the length of the video', async () => {
    const output = path.join(dir, 'short-audio.mp4');
    const result = await combineClips({ clips, audioFile: path.join(dir, 'short.m4a'), output, width: W, height: H, tools });
    expect(result.hasAudio).toBe(true);
    const info = await probe(output, { tools });
    expect(info.audioCodec).toBe('aac');
    expect(info.audioDurationSeconds).toBeGreaterThan(4.4);
    expect(info.audioDurationSeconds).toBeLessThan(4.6);
    expect(info.durationSeconds).toBeLessThan(4.6);
    expect(await audioPeak(output, 0.2, 1.8)).toBeGreaterThan(0.05); // the tone
    expect(await audioPeak(output, 2.3, 4.4)).toBeLessThan(0.002); // then silence
  });

  it('cuts a longer audio track at the end of the video', async () => {
    const output = path.join(dir, 'long-audio.mp4');
    const result = await combineClips({ clips, audioFile: path.join(dir, 'long.mp3'), output, width: W, height: H, tools });
    expect(result.hasAudio).toBe(true);
    const info = await probe(output, { tools });
    expect(info.audioDurationSeconds).toBeGreaterThan(4.4);
    expect(info.audioDurationSeconds).toBeLessThan(4.6);
    expect(info.durationSeconds).toBeLessThan(4.6);
    expect(await audioPeak(output, 3.5, 4.4)).toBeGreaterThan(0.05); // sound up to the end
  });

  it('burns the subtitles into the picture when asked: the subtitle area changes, only while a cue is on', async () => {
    const output = path.join(dir, 'burned.mp4');
    const result = await combineClips({ clips, burnSubtitles: true, output, width: W, height: H, tools });
    expect(result.cues).toEqual(plain.cues);
    expect((await probe(output, { tools })).durationSeconds).toBeCloseTo(4.5, 1);

    const bottom = [Math.round(H * 0.7), H] as const;
    const top = [0, Math.round(H * 0.4)] as const;
    for (const t of [1, 4]) {
      const [burned, clean] = await Promise.all([frameAt(output, t), frameAt(plainOutput(), t)]);
      expect(changed(burned, clean, ...bottom), `subtitle area at ${t}s`).toBeGreaterThan(0.05);
      expect(changed(burned, clean, ...top), `picture above at ${t}s`).toBe(0);
    }
    // The middle clip has no cue.
    const [burned, clean] = await Promise.all([frameAt(output, 2.75), frameAt(plainOutput(), 2.75)]);
    expect(changed(burned, clean, ...bottom)).toBe(0);
  });

  it('rejects an empty clip list and an audio file without audio', async () => {
    await expect(combineClips({ clips: [], output: path.join(dir, 'x.mp4'), tools })).rejects.toMatchObject({
      name: 'MediaError',
      code: 'MEDIA_INVALID_INPUT',
    });
    await expect(
      combineClips({ clips: clips.slice(0, 1), audioFile: clips[0]!.file, output: path.join(dir, 'x.mp4'), tools }),
    ).rejects.toMatchObject({ code: 'MEDIA_INVALID_INPUT' });
  });
});
