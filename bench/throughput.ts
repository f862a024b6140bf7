/**
 * End-to-end throughput at fal latency 0: `npx tsx bench/throughput.ts [N=5000] [workers=1]`.
 * Transitions completed per second (create → COMPLETED, all through the API's services, BullMQ,
 * the real fal client and PostgreSQL), next to raw BullMQ no-op jobs per second on the same
 * machine in the same run. Goal: >= 500 transitions/s.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Counts } from './count-roundtrips.ts';
import { rawBullmqJobsPerSecond } from './bullmq-raw.ts';
import { cpuDelta, cpuSnapshot } from './lib.ts';
import { generateAndWait, startBenchPipeline } from './pipeline.ts';

// Every process of the run (this one: the API; the workers) counts its round trips here.
const countDir = mkdtempSync(join(tmpdir(), 'segue-counts-'));
process.env.BENCH_COUNTS = countDir;
await import('./count-roundtrips.ts');
const countsHere = () => (globalThis as { benchCounts?: () => Counts }).benchCounts!();

const add = (into: Counts, more: Counts) => {
  into.statements += more.statements;
  for (const [label, n] of Object.entries(more.sql ?? {})) into.sql[label] = (into.sql[label] ?? 0) + n;
  for (const [cmd, n] of Object.entries(more.redis)) into.redis[cmd] = (into.redis[cmd] ?? 0) + n;
  return into;
};
const minus = (a: Counts, b: Counts): Counts => ({
  statements: a.statements - b.statements,
  sql: Object.fromEntries(Object.entries(a.sql).map(([label, n]) => [label, n - (b.sql[label] ?? 0)])),
  redis: Object.fromEntries(Object.entries(a.redis).map(([cmd, n]) => [cmd, n - (b.redis[cmd] ?? 0)])),
});
const redisTotal = (c: Counts) => Object.values(c.redis).reduce((x, y) => x + y, 0);

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
    // Posters on: one ffmpeg run per video, on this machine's two cores (MEDIA_CONCURRENCY=0: off).
    MEDIA_CONCURRENCY: process.env.MEDIA_CONCURRENCY ?? '2',
  },
});
const account = await pipeline.account();
/** What the workers have sent so far (written by count-roundtrips.ts on SIGUSR2 and at exit). */
const workerCounts = () =>
  readdirSync(countDir)
    .filter((f) => f !== `${process.pid}.json`)
    .reduce((sum, f) => add(sum, JSON.parse(readFileSync(join(countDir, f), 'utf8')) as Counts), { statements: 0, sql: {}, redis: {} } as Counts);
for (const w of pipeline.workers) w.kill('SIGUSR2');
await new Promise((r) => setTimeout(r, 300));
const workersBefore = workerCounts();
const before = await cpuSnapshot();
const apiBefore = countsHere();
const { seconds, completed, polls } = await generateAndWait(pipeline.segue, account.id, n, 'throughput');
const cpu = cpuDelta(before, await cpuSnapshot());
// The posters follow COMPLETED: wait for them before counting what each transition cost.
const postersStarted = performance.now();
while ((await pipeline.segue.db.transition.count({ where: { accountId: account.id, status: 'COMPLETED', posterKey: null } })) > 0) {
  if (pipeline.env.MEDIA_CONCURRENCY === '0' || performance.now() - postersStarted > 600_000) break;
  await new Promise((r) => setTimeout(r, 500));
}
const posterSeconds = (performance.now() - postersStarted) / 1000;
const api = minus(countsHere(), apiBefore);
api.statements -= polls;
const c = await pipeline.emulator.counters();
// Where the rate is set: per second of the run, requests submitted to fal, ended by fal, and
// transitions COMPLETED (a stage whose count per second is the lowest is the one to look at).
const timeline: string[] = [];
if (process.env.BENCH_DETAIL) {
  const reqs = await pipeline.emulator.requests();
  const done = await pipeline.segue.db.transition.findMany({ where: { accountId: account.id }, select: { createdAt: true, completedAt: true } });
  const t0 = done.reduce((first, r) => Math.min(first, r.createdAt.getTime()), Infinity);
  const bins = (times: number[]) => {
    const counts: number[] = [];
    for (const t of times) counts[Math.floor((t - t0) / 1000)] = (counts[Math.floor((t - t0) / 1000)] ?? 0) + 1;
    return Array.from(counts, (v) => v ?? 0).join(' ');
  };
  timeline.push(`  per second since the first create: submitted [${bins(reqs.map((r) => r.submittedAt))}]`);
  timeline.push(`    ended by fal [${bins(reqs.flatMap((r) => (r.completedAt ? [r.completedAt] : [])))}]`);
  timeline.push(`    COMPLETED [${bins(done.flatMap((r) => (r.completedAt ? [r.completedAt.getTime()] : [])))}]`);
}
await pipeline.close();
const workersRun = minus(workerCounts(), workersBefore);
const all = add(add({ statements: 0, sql: {}, redis: {} }, api), workersRun);
const redisByCommand = Object.entries(all.redis).filter(([, d]) => d > 0).sort((a, b) => b[1] - a[1]);
rmSync(countDir, { recursive: true, force: true });

const raw = await rawBullmqJobsPerSecond(pipeline.segue.config.redis, n, 100);
const rate = completed / seconds;
console.log(
  `throughput: N=${n}, fal latency 0, FAL_CONCURRENCY=${concurrency}, ${workers} worker process(es), ` +
    `webhooks ${pipeline.env.PUBLIC_URL ? 'on' : 'off'}, videos copied to storage, MEDIA_CONCURRENCY=${pipeline.env.MEDIA_CONCURRENCY}`,
);
console.log(`  completed ${completed}/${n} in ${seconds.toFixed(2)} s = ${rate.toFixed(0)} transitions/s (goal >= 500: ${rate >= 500 ? 'met' : 'NOT met'})`);
console.log(`  raw BullMQ no-op jobs: ${raw.toFixed(0)} jobs/s; ratio ${(rate / raw).toFixed(3)}`);
console.log(
  `  per transition, create → COMPLETED with its poster: ${(all.statements / n).toFixed(1)} SQL statements ` +
    `(API ${(api.statements / n).toFixed(1)}, workers ${(workersRun.statements / n).toFixed(1)}), ` +
    `${(redisTotal(all) / n).toFixed(1)} Redis commands (API ${(redisTotal(api) / n).toFixed(1)}, workers ${(redisTotal(workersRun) / n).toFixed(1)}) (goal <= 12 each)`,
);
console.log(`  Redis commands by kind, per transition: ${redisByCommand.slice(0, process.env.SQL_DETAIL ? 20 : 8).map(([cmd, d]) => `${cmd} ${(d / n).toFixed(1)}`).join(', ')}`);
if (process.env.SQL_DETAIL) {
  const bySql = Object.entries(all.sql).filter(([, d]) => d > 0).sort((a, b) => b[1] - a[1]);
  for (const [label, d] of bySql.slice(0, 30)) console.log(`    ${(d / n).toFixed(2)}  ${label}`);
}
console.log(`  posters: the last one ${posterSeconds.toFixed(1)} s after the last COMPLETED`);
console.log(`  CPU during the run: ${cpu}`);
for (const line of timeline) console.log(line);
console.log(`  emulator: submitted ${c.submitted}, duplicates ${c.duplicateInputs}, status calls ${c.statusCalls}, result calls ${c.resultCalls}, webhooks ${c.webhooksDelivered}, connections opened ${c.connections}, status streams ${c.streamsOpened} (cut ${c.streamsCut})`);
process.exit(0);
