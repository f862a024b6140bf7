/**
 * Local media throughput: a poster's time and ffmpeg CPU (one per finished video), preview renders
 * per minute (one at a time, and two at once) and the time to join 10 clips, on this machine's
 * ffmpeg.
 * `npx tsx bench/media.ts [size=640x360] [tools=auto|system|npm]`
 */
import { readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { combineClips } from '../src/media/combine.ts';
import { createMediaService } from '../src/media/service.ts';
import { mediaTools, runFfmpeg } from '../src/media/ffmpeg.ts';
import { POSTERS_PER_RUN, renderPoster, renderPosters } from '../src/media/poster.ts';
import { renderPreview } from '../src/media/preview.ts';

const [width, height] = (process.argv[2] ?? '640x360').split('x').map(Number) as [number, number];
const prefer = (process.argv[3] ?? 'auto') as 'auto' | 'system' | 'npm';
const front = path.resolve('assets/samples/front.png');
const tail = path.resolve('assets/samples/tail.png');
const types = ['morph', 'wipe', 'zoom'];

const tools = await mediaTools({ prefer });
const dir = await mkdtemp(path.join(tmpdir(), 'segue-bench-media-'));
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
console.log(`ffmpeg: ${tools.source} ${tools.ffmpeg}\n  ${tools.version}\n  xfade: ${tools.hasXfade}`);
console.log(`ffprobe: ${tools.ffprobeSource} ${tools.ffprobe}`);
console.log(`cpus: ${availableParallelism()}, previews ${width}x${height} at 24 fps, 5 s each\n`);

let n = 0;
const render = () => {
  const i = n++;
  return renderPreview({
    frontImage: front,
    tailImage: tail,
    durationSeconds: 5,
    transitionType: types[i % types.length],
    output: path.join(dir, `preview-${i}.mp4`),
    width,
    height,
    tools,
  });
};

async function timed<T>(work: () => Promise<T>) {
  const started = performance.now();
  const result = await work();
  return { result, ms: performance.now() - started };
}

/** CPU (ms) of the children this process has waited for: its ffmpeg runs. */
const childrenCpuMs = () => {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) * 10;
};

try {
  // A poster per finished video (Kling's 10 s fixture of the fal emulator), one after another.
  const video = path.resolve('tools/fal-emulator/fixtures/10s.mp4');
  const cpuBefore = childrenCpuMs();
  const posters = await timed(async () => {
    for (let i = 0; i < 100; i++) await renderPoster({ video, output: path.join(dir, `poster-${i % 4}.jpg`), tools });
  });
  console.log(`100 posters one at a time: ${(posters.ms / 100).toFixed(1)} ms each, ffmpeg CPU ${((childrenCpuMs() - cpuBefore) / 100).toFixed(1)} ms each`);
  // As the worker renders a backlog: POSTERS_PER_RUN videos to an ffmpeg run.
  const cpuBatched = childrenCpuMs();
  const batched = await timed(async () => {
    for (let i = 0; i < 100; i += POSTERS_PER_RUN) {
      await renderPosters(Array.from({ length: POSTERS_PER_RUN }, (_, k) => ({ video, output: path.join(dir, `batched-${k}.jpg`) })), { tools });
    }
  });
  console.log(`100 posters in runs of ${POSTERS_PER_RUN}: ${(batched.ms / 100).toFixed(1)} ms each, ffmpeg CPU ${((childrenCpuMs() - cpuBatched) / 100).toFixed(1)} ms each`);

  // As a worker stores them: through the media service (with its frame tools, the static ffmpeg
  // first, so its time may differ from the line above), next to their video in local storage.
  // What a poster costs the worker's own process (ffmpeg runs from the helper process).
  const config = loadConfig({ ...process.env, STORAGE_DRIVER: 'local', MEDIA_DIR: path.join(dir, 'media'), LOG_LEVEL: 'warn', LOG_PRETTY: 'false' });
  const media = createMediaService(config, createLogger(config));
  try {
    const store = await media.storage();
    for (let i = 0; i < 20; i++) {
      const file = store.path!(`transitions/t${i}/r1.mp4`);
      await mkdir(path.dirname(file), { recursive: true });
      await copyFile(video, file);
    }
    const cpuAt = process.cpuUsage();
    const stored = await timed(async () => {
      for (let i = 0; i < 200; i++) {
        const key = `transitions/t${i % 20}/r1.mp4`;
        await media.poster(key, `transitions/t${i % 20}/r1-poster.jpg`, store.path!(key));
      }
    });
    const cpu = process.cpuUsage(cpuAt);
    console.log(
      `200 posters stored by the media service (local storage): ${(stored.ms / 200).toFixed(1)} ms each, ` +
        `this process's CPU ${((cpu.user + cpu.system) / 1000 / 200).toFixed(2)} ms each (user ${(cpu.user / 1000 / 200).toFixed(2)}, system ${(cpu.system / 1000 / 200).toFixed(2)})`,
    );
  } finally {
    media.close();
  }

  const sequential = await timed(async () => {
    for (let i = 0; i < 6; i++) await render();
  });
  console.log(`6 previews one at a time: ${seconds(sequential.ms)} -> ${(6 / (sequential.ms / 60_000)).toFixed(1)} renders/min`);

  const parallel = await timed(async () => {
    for (let i = 0; i < 3; i++) await Promise.all([render(), render()]);
  });
  console.log(`6 previews two at a time: ${seconds(parallel.ms)} -> ${(6 / (parallel.ms / 60_000)).toFixed(1)} renders/min`);

  const clips = Array.from({ length: 10 }, (_, i) => ({ file: path.join(dir, `preview-${i}.mp4`), subtitles: `Scene ${i + 1}: from dawn to night` }));
  const audioFile = path.join(dir, 'music.m4a');
  await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=220:d=30', '-c:a', 'aac', audioFile], { tools });

  const plain = await timed(() => combineClips({ clips, output: path.join(dir, 'combined.mp4'), width, height, tools }));
  console.log(`combine 10 clips (${plain.result.durationSeconds.toFixed(1)} s of video): ${seconds(plain.ms)}`);
  const full = await timed(() =>
    combineClips({
      clips,
      audioFile,
      burnSubtitles: true,
      output: path.join(dir, 'combined-full.mp4'),
      subtitlesOutput: path.join(dir, 'combined-full.vtt'),
      width,
      height,
      tools,
    }),
  );
  console.log(`combine 10 clips + audio + burned subtitles: ${seconds(full.ms)}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
