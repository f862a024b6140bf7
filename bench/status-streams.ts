/**
 * Following many requests at once on one worker: `npx tsx bench/status-streams.ts [inFlight=1000] [seconds=60] [modes=stream,poll]`.
 * Puts `inFlight` requests IN_PROGRESS at the emulator (a latency longer than the run), then
 * watches for `seconds`, once in stream mode and once in poll mode: the status streams open, the
 * status traffic fal sees per minute, and the worker process's memory (RSS, from /proc; the peak
 * over the whole run). WORKER_ENTRY=dist/main.js measures the built worker (npm run build:server).
 */
import { readFileSync } from 'node:fs';
import { createAndGenerate } from '../src/domain/generation.ts';
import { freshBenchDatabase, segueMetrics } from './lib.ts';
import { benchImages, startBenchPipeline } from './pipeline.ts';

type Mode = 'stream' | 'poll';
const inFlight = Number(process.argv[2] ?? 1000);
const seconds = Number(process.argv[3] ?? 60);
const modes = (process.argv[4] ?? 'stream,poll').split(',') as Mode[];
if (modes.some((m) => m !== 'stream' && m !== 'poll')) throw new Error(`modes: stream, poll or both (stream,poll), not ${process.argv[4]}`);

const rssMb = (pid: number) => {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'))!;
  return Number(line.split(/\s+/)[1]) / 1024;
};

const opsPort = 4600 + (process.pid % 300);

/** The worker's JS heap used and total (MB), from its metrics; V8 keeps a heap grown in a burst, so RSS alone overstates what is live. */
async function heapOf() {
  // The worker opens its metrics port just after it starts taking jobs.
  for (let attempt = 0; ; attempt++) {
    try {
      const value = await segueMetrics(`http://127.0.0.1:${opsPort}/metrics`);
      return { used: value('nodejs_heap_size_used_bytes') / 2 ** 20, total: value('nodejs_heap_size_total_bytes') / 2 ** 20 };
    } catch (error) {
      if (attempt >= 50) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function measure(mode: Mode) {
  const pipeline = await startBenchPipeline({
    emulator: { latencyMs: 3_600_000 },
    workers: 1,
    env: {
      FAL_STATUS_MODE: mode,
      FAL_CONCURRENCY: String(inFlight),
      WORKER_CONCURRENCY: String(inFlight),
      WEBHOOKS: 'false',
      // Production's polling defaults: 2 s, backing off to 15 s.
      FAL_POLL_INTERVAL_MS: '2000',
      FAL_POLL_MAX_INTERVAL_MS: '15000',
      // BENCH_DETAIL=1: the worker serves its metrics, for its JS heap figures.
      ...(process.env.BENCH_DETAIL ? { OPS_PORT: String(opsPort) } : {}),
    },
  });
  try {
    const worker = pipeline.workers[0]!;
    const idleRss = rssMb(worker.pid!);
    const idleHeap = process.env.BENCH_DETAIL ? await heapOf() : null;
    // Peak over the whole run: submitting and opening 1,000 streams included.
    let peak = idleRss;
    const peakTimer = setInterval(() => (peak = Math.max(peak, rssMb(worker.pid!))), 250);
    const account = await pipeline.account();
    const images = await benchImages();
    for (let i = 0; i < inFlight; i += 100) {
      await createAndGenerate(pipeline.segue, account.id, {
        transitions: Array.from({ length: Math.min(100, inFlight - i) }, (_, j) => ({
          frontImageUrl: images.front,
          tailImageUrl: images.tail,
          prompt: `streams ${mode} ${i + j}`,
        })),
      });
    }
    const started = Date.now();
    for (;;) {
      const c = await pipeline.emulator.counters();
      if (c.inProgress >= inFlight) break;
      if (Date.now() - started > 120_000) throw new Error(`only ${c.inProgress} in progress after 2 minutes`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // Let the polling back off to its steady interval before counting.
    await new Promise((r) => setTimeout(r, 20_000));
    const before = await pipeline.emulator.counters();
    const until = Date.now() + seconds * 1000;
    while (Date.now() < until) {
      peak = Math.max(peak, rssMb(worker.pid!));
      await new Promise((r) => setTimeout(r, 500));
    }
    const after = await pipeline.emulator.counters();
    const rss = rssMb(worker.pid!);
    clearInterval(peakTimer);
    const perRequest = ((rss - idleRss) * 1024) / inFlight;
    const perMinute = ((after.statusCalls - before.statusCalls) / seconds) * 60;
    console.log(`${mode}: ${inFlight} requests in flight on one worker`);
    if (idleHeap) {
      const heap = await heapOf();
      console.log(`  worker JS heap: used ${idleHeap.used.toFixed(0)} MB idle, ${heap.used.toFixed(0)} MB in flight (${(((heap.used - idleHeap.used) * 1024) / inFlight).toFixed(1)} KB per request); total ${idleHeap.total.toFixed(0)} -> ${heap.total.toFixed(0)} MB`);
    }
    console.log(`  status streams open at fal: ${after.streamsOpen}; opened during the ${seconds} s: ${after.streamsOpened - before.streamsOpened}`);
    console.log(`  status traffic: ${perMinute.toFixed(0)} calls per minute (${(perMinute / inFlight).toFixed(2)} per request)`);
    console.log(`  worker (node ${process.env.WORKER_NODE_OPTIONS ? `${process.env.WORKER_NODE_OPTIONS} ` : ''}${process.env.WORKER_ENTRY ?? '--import tsx src/main.ts'} worker) RSS: idle ${idleRss.toFixed(0)} MB, now ${rss.toFixed(0)} MB, peak ${peak.toFixed(0)} MB; ${perRequest.toFixed(1)} KB per request (goals <= 50 KB per request: ${perRequest <= 50 ? 'met' : 'NOT met'}; peak <= 200 MB: ${peak <= 200 ? 'met' : 'NOT met'})`);
    return { perMinute, rss, idleRss };
  } finally {
    await pipeline.close();
  }
}

const results: Partial<Record<Mode, Awaited<ReturnType<typeof measure>>>> = {};
for (const [i, mode] of modes.entries()) {
  // Each mode starts from an empty database: the previous one's unfinished rows would be work for
  // the new worker (its reconciler takes them up), and would count in its idle figure.
  if (i > 0) freshBenchDatabase();
  results[mode] = await measure(mode);
}
const { stream, poll } = results;
if (stream && poll) {
  console.log(`\nstreams vs polling: ${stream.perMinute.toFixed(0)} vs ${poll.perMinute.toFixed(0)} status calls per minute; worker RSS growth ${(stream.rss - stream.idleRss).toFixed(0)} vs ${(poll.rss - poll.idleRss).toFixed(0)} MB`);
}
process.exit(0);
