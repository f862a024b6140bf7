/**
 * How much the media runs slow the work beside them: a fixed piece of CPU work on as many threads
 * as the machine has cores (the stand-in for the API, the workers' tracking and PostgreSQL), timed
 * alone, then while MEDIA_CONCURRENCY ffmpeg runs go on through the media service at MEDIA_NICE 0
 * and at the default 10. At 10 the work should take about as long as alone.
 * `npx tsx bench/media-priority.ts [rounds=5]`
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { createMediaService } from '../src/media/service.ts';

const rounds = Number(process.argv[2] ?? 5);
const threads = availableParallelism();

// One thread's share of the work: hashing, about a second of CPU on this machine.
const WORK = `
  const { createHash } = require('node:crypto');
  let digest = Buffer.alloc(32);
  for (let i = 0; i < 400_000; i++) digest = createHash('sha256').update(digest).digest();
  require('node:worker_threads').parentPort.postMessage(digest.length);
`;

/** Wall time of the work on every core at once. */
async function timeWork(): Promise<number> {
  const started = performance.now();
  await Promise.all(
    Array.from({ length: threads }, () => new Promise((resolve, reject) => new Worker(WORK, { eval: true }).once('message', resolve).once('error', reject))),
  );
  return performance.now() - started;
}

/** Times the work while `concurrency` long ffmpeg encodes run at `nice` through the media service's helper. */
async function withMedia(nice: number | null, concurrency: number): Promise<number> {
  if (nice === null) return timeWork();
  const config = loadConfig({ ...process.env, NODE_ENV: 'development', MEDIA_NICE: String(nice), LOG_LEVEL: 'warn' });
  const media = createMediaService(config, createLogger(config));
  const tools = await media.tools();
  const controller = new AbortController();
  const endless = ['-hide_banner', '-nostdin', '-f', 'lavfi', '-i', 'testsrc2=s=1280x720', '-threads', '1', '-f', 'null', '-'];
  // An encode that ends before the work does (it could not start, it failed) would leave the work
  // alone and read as a priority that works: the bench fails instead.
  const runs = Array.from({ length: concurrency }, () =>
    tools.run!(tools.ffmpeg, endless, { signal: controller.signal }).then(
      () => Promise.reject(new Error('an ffmpeg encode ended before the work did')),
      (error: unknown) => (controller.signal.aborted ? undefined : Promise.reject(error)),
    ),
  );
  try {
    // Until they are aborted the encodes settle only by failing, which ends either race.
    // The encodes are under way before the clock starts.
    await Promise.race([new Promise((r) => setTimeout(r, 500)), ...runs]);
    return (await Promise.race([timeWork(), ...runs])) as number;
  } finally {
    controller.abort();
    await Promise.allSettled(runs);
    media.close();
  }
}

const concurrency = loadConfig({ ...process.env, NODE_ENV: 'development' }).media.concurrency;
const settings = [['alone', null], ['MEDIA_NICE=0', 0], ['MEDIA_NICE=10', 10]] as const;
const times: Record<string, number[]> = {};
// Warm-up: the first threads and hashes pay for their start.
await timeWork();
for (let round = 0; round < rounds; round++) {
  for (const [name, nice] of settings) (times[name] ??= []).push(await withMedia(nice, concurrency));
}
console.log(`media priority: work on ${threads} threads beside ${concurrency} ffmpeg encodes (MEDIA_CONCURRENCY), ${rounds} rounds`);
// Each round against its own time alone: the machine's speed may drift between rounds.
const median = (t: number[]) => [...t].sort((a, b) => a - b)[Math.floor(t.length / 2)]!;
for (const [name] of settings) {
  const t = times[name]!;
  const ratios = t.map((ms, i) => ms / times.alone![i]!);
  console.log(`  ${name.padEnd(14)} ${t.map((ms) => `${(ms / 1000).toFixed(2)} s`).join(', ')}  (median ${median(ratios).toFixed(2)}× alone, round by round)`);
}
process.exit(0);
