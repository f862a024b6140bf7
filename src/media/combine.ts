import { copyFile, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { assertReadableFile, fitFilter, frameSettings, h264Args, num, writeAtomically } from './encode.ts';
import { MediaError } from './errors.ts';
import { probe, runFfmpeg } from './ffmpeg.ts';
import { burnInPlan, cleanCueText, subtitleFont, toSrt, toWebVtt, type Cue } from './subtitles.ts';
import { mediaTools, type MediaTools } from './tools.ts';

export interface CombineClip {
  file: string;
  /** Shown for the whole of this clip; null or blank: no cue. */
  subtitles?: string | null | undefined;
}

export interface CombineOptions {
  /** In playback order. Clips may differ in size and frame rate; any audio they carry is dropped. */
  clips: readonly CombineClip[];
  /** Laid under the whole video: cut at its end, or padded with silence to reach it. */
  audioFile?: string | null | undefined;
  /** Draw the cues into the picture (the VTT/SRT files are written either way when asked for). */
  burnSubtitles?: boolean | undefined;
  output: string;
  /** Where to write the cues as WebVTT. */
  subtitlesOutput?: string | null | undefined;
  /** Where to write the cues as SRT. */
  srtOutput?: string | null | undefined;
  width?: number | undefined;
  height?: number | undefined;
  fps?: number | undefined;
  /** A TTF/OTF for burned subtitles; default: the bundled DejaVu Sans Bold. */
  fontFile?: string | null | undefined;
  tools?: MediaTools | undefined;
  /** Default: 10 minutes. */
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  /** Scratch space for the filter's text files; default: the OS temp directory. */
  tempDir?: string | undefined;
}

export interface CombineResult {
  output: string;
  /** As ffprobe reads the written file. */
  durationSeconds: number;
  hasAudio: boolean;
  cues: Cue[];
  /** Where each clip lands in the joined video, in seconds. */
  clips: Array<{ start: number; end: number }>;
}

// Beyond this a filter graph goes to a file: one argument may not exceed 128 KiB on Linux.
const INLINE_GRAPH_LIMIT = 100_000;

export async function combineClips(options: CombineOptions): Promise<CombineResult> {
  const { width, height, fps } = frameSettings(options);
  if (options.clips.length === 0) throw new MediaError('MEDIA_INVALID_INPUT', 'combineClips needs at least one clip.');
  const tools = options.tools ?? (await mediaTools());
  const run = { tools, signal: options.signal };

  for (const [i, clip] of options.clips.entries()) await assertReadableFile(clip.file, `clips[${i}].file`);
  if (options.audioFile) await assertReadableFile(options.audioFile, 'audioFile');

  // Frame counts, not seconds, decide where clips meet: each clip becomes exactly
  // round(duration * fps) frames, so cue times and the total are exact multiples of 1/fps.
  const probes = await Promise.all(options.clips.map((clip) => probe(clip.file, run)));
  const frameCounts = probes.map((p, i) => {
    const seconds = p.videoDurationSeconds ?? p.durationSeconds;
    if (!p.videoCodec || !(seconds > 0)) {
      throw new MediaError('MEDIA_INVALID_INPUT', `clips[${i}] (${path.basename(options.clips[i]!.file)}) has no video to join.`);
    }
    return Math.max(1, Math.round(seconds * fps));
  });
  if (options.audioFile && !(await probe(options.audioFile, run)).hasAudio) {
    throw new MediaError('MEDIA_INVALID_INPUT', `audioFile (${path.basename(options.audioFile)}) has no audio stream.`);
  }

  const ranges: CombineResult['clips'] = [];
  let frame = 0;
  for (const count of frameCounts) {
    ranges.push({ start: frame / fps, end: (frame + count) / fps });
    frame += count;
  }
  const total = frame / fps;
  const cues: Cue[] = [];
  options.clips.forEach((clip, i) => {
    const text = cleanCueText(clip.subtitles ?? '');
    if (text) cues.push({ start: round3(ranges[i]!.start), end: round3(ranges[i]!.end), text });
  });

  const work = await mkdtemp(path.join(options.tempDir ?? tmpdir(), 'segue-combine-'));
  try {
    const parts = options.clips.map(
      (_, i) =>
        // Clips may start at a non-zero timestamp; fps first (fewer frames to scale), then fit,
        // then pad with a copy of the last frame in case fps rounds one short, and cut exactly.
        `[${i}:v]setpts=PTS-STARTPTS,fps=${fps},${fitFilter(width, height)},` +
        `tpad=stop_mode=clone:stop=2,trim=end_frame=${frameCounts[i]},setpts=PTS-STARTPTS[v${i}]`,
    );
    const joined = `${options.clips.map((_, i) => `[v${i}]`).join('')}concat=n=${options.clips.length}:v=1:a=0`;
    let video = `${joined}[vout]`;
    if (options.burnSubtitles && cues.length > 0) {
      // ffmpeg runs in the scratch directory, so the filter names its files without paths that
      // would need filter-graph escaping.
      await linkOrCopy(await subtitleFont(options.fontFile), path.join(work, 'font.ttf'));
      const plan = burnInPlan(cues, { width, height, fps }, 'font.ttf');
      for (const file of plan.files) await writeFile(path.join(work, file.name), file.content, 'utf8');
      video = `${joined},${plan.filters.join(',')}[vout]`;
    }
    const audioInput = options.clips.length;
    const audio = options.audioFile
      ? [
          `[${audioInput}:a]asetpts=PTS-STARTPTS,aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,` +
            `apad,atrim=end=${num(total)}[aout]`,
        ]
      : [];
    const graph = [...parts, video, ...audio].join(';');

    let graphArgs = ['-filter_complex', graph];
    if (Buffer.byteLength(graph) > INLINE_GRAPH_LIMIT) {
      await writeFile(path.join(work, 'graph.txt'), graph, 'utf8');
      graphArgs = ['-filter_complex_script', 'graph.txt'];
    }

    const output = path.resolve(options.output);
    await writeAtomically(output, (partial) =>
      runFfmpeg(
        [
          ...options.clips.flatMap((clip) => ['-i', path.resolve(clip.file)]),
          ...(options.audioFile ? ['-i', path.resolve(options.audioFile)] : []),
          ...graphArgs,
          '-map', '[vout]',
          ...(options.audioFile ? ['-map', '[aout]', '-c:a', 'aac', '-b:a', '128k'] : ['-an']),
          ...h264Args(fps),
          '-f', 'mp4',
          partial,
        ],
        { ...run, cwd: work, timeoutMs: options.timeoutMs ?? 600_000 },
      ),
    );

    if (options.subtitlesOutput) await writeTextAtomically(options.subtitlesOutput, toWebVtt(cues));
    if (options.srtOutput) await writeTextAtomically(options.srtOutput, toSrt(cues));

    const written = await probe(output, run);
    return { output: options.output, durationSeconds: written.durationSeconds, hasAudio: written.hasAudio, cues, clips: ranges };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const round3 = (seconds: number) => Math.round(seconds * 1000) / 1000;

async function linkOrCopy(from: string, to: string) {
  try {
    await symlink(path.resolve(from), to);
  } catch {
    await copyFile(from, to);
  }
}

function writeTextAtomically(file: string, text: string) {
  return writeAtomically(file, (partial) => writeFile(partial, text, 'utf8'));
}
