/**
 * End-to-end throughput at fal latency 0: `npx tsx bench/throughput.ts [N=5000] [workers=1]`.
 * Transitions completed per second (create → COMPLETED, all through the API's services, BullMQ,
 * the real fal client and PostgreSQL), next to raw BullMQ no-op jobs per second on the same
 * machine in the same run. Goal: >= 500 transitions/s.
 */
import { rawBullmqJobsPerSecond } from './bullmq-raw.ts';
import { cpuDelta, cpuSnapshot } from './lib.ts';
import { generateAndWait, startBenchPipeline } from './pipeline.ts';

const n = Number(process.argv[2] ?? 5000);
const workers = Number(process.argv[3] ?? 1);
const concurrency = Number(process.env.FAL_CONCURRENCY ?? 500);

const pipeline = await startBenchPipeline({
  emulator: { latencyMs: 0 },
  workers,
  env: {
    FAL_CONCURRENCY: String(concurrency),
    WORKER_CONCURRENCY: String(concurrency),
    FAL_POLL_INTERVAL_MS: process.env.FAL_POLL_INTERVAL_MS ?? '2000',
    FAL_POLL_MAX_INTERVAL_MS: process.env.FAL_POLL_MAX_INTERVAL_MS ?? '15000',
    WEBHOOKS: process.env.WEBHOOKS ?? 'true',
    // Posters (one ffmpeg run per video) belong to a media pool of their own in a deployment like
    // this; MEDIA_CONCURRENCY=2 measures them on the same two cores instead.
    MEDIA_CONCURRENCY: process.env.MEDIA_CONCURRENCY ?? '0',
  },
});
const account = await pipeline.account();
const before = await cpuSnapshot();
const { seconds, completed } = await generateAndWait(pipeline.segue, account.id, n, 'throughput');
const cpu = cpuDelta(before, await cpuSnapshot());
const c = pipeline.emulator.counters();
await pipeline.close();

const raw = await rawBullmqJobsPerSecond(pipeline.segue.config.redis, n, 100);
const rate = completed / seconds;
console.log(
  `throughput: N=${n}, fal latency 0, FAL_CONCURRENCY=${concurrency}, ${workers} worker process(es), ` +
    `webhooks ${pipeline.env.PUBLIC_URL ? 'on' : 'off'}, videos copied to storage, MEDIA_CONCURRENCY=${pipeline.env.MEDIA_CONCURRENCY}`,
);
console.log(`  completed ${completed}/${n} in ${seconds.toFixed(2)} s = ${rate.toFixed(0)} transitions/s (goal >= 500: ${rate >= 500 ? 'met' : 'NOT met'})`);
console.log(`  raw BullMQ no-op jobs: ${raw.toFixed(0)} jobs/s; ratio ${(rate / raw).toFixed(3)}`);
console.log(`  CPU during the run: ${cpu}`);
console.log(`  emulator: submitted ${c.submitted}, duplicates ${c.duplicateInputs}, status calls ${c.statusCalls}, webhooks ${c.webhooksDelivered}`);
process.exit(0);
