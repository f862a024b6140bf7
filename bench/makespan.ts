/**
 * Makespan of a large batch against the emulator, one worker process:
 * `npx tsx bench/makespan.ts [N=500] [latencyMs=2000] [concurrency=100]`.
 * Ideal = ceil(N / C) · L; goal: makespan / ideal <= 1.15 (1.2 with WEBHOOKS=false).
 * Webhooks on (PUBLIC_URL), polling as the fallback (WEBHOOKS=false to poll only).
 */
import { cpuDelta, cpuSnapshot, percentiles } from './lib.ts';
import { generateAndWait, startBenchPipeline } from './pipeline.ts';

const n = Number(process.argv[2] ?? 500);
const latencyMs = Number(process.argv[3] ?? 2000);
const concurrency = Number(process.argv[4] ?? 100);
// The issue's setting is one worker process; BENCH_WORKERS=n shows how more of them share the work.
const workers = Number(process.env.BENCH_WORKERS ?? 1);

const pipeline = await startBenchPipeline({
  emulator: { latencyMs },
  workers,
  env: {
    FAL_CONCURRENCY: String(concurrency),
    // WORKER_CONCURRENCY: the default, which makes room for the staged jobs beyond FAL_CONCURRENCY.
    ...(process.env.WORKER_CONCURRENCY && { WORKER_CONCURRENCY: process.env.WORKER_CONCURRENCY }),
    // Production's polling defaults (2 s, backing off to 15 s): with webhooks, polling is the fallback.
    FAL_POLL_INTERVAL_MS: process.env.FAL_POLL_INTERVAL_MS ?? '2000',
    FAL_POLL_MAX_INTERVAL_MS: process.env.FAL_POLL_MAX_INTERVAL_MS ?? '15000',
    WEBHOOKS: process.env.WEBHOOKS ?? 'true',
  },
});
const account = await pipeline.account();
const before = await cpuSnapshot();
const calledAt = Date.now();
const { seconds, completed, enqueueSeconds } = await generateAndWait(pipeline.segue, account.id, n, 'makespan');
const cpu = cpuDelta(before, await cpuSnapshot());
const ideal = (Math.ceil(n / concurrency) * latencyMs) / 1000;
const c = await pipeline.emulator.counters();
console.log(`makespan: N=${n}, latency ${latencyMs} ms, FAL_CONCURRENCY=${concurrency}, ${workers} worker process${workers === 1 ? '' : 'es'}, webhooks ${pipeline.env.PUBLIC_URL ? 'on' : 'off'}`);
console.log(`  completed ${completed}/${n} in ${seconds.toFixed(2)} s (enqueue ${enqueueSeconds.toFixed(2)} s); ideal ${ideal.toFixed(2)} s`);
// The goals: 1.15 with webhooks (lean at scale), 1.2 without them (progress from fal's status streams).
const goal = pipeline.env.PUBLIC_URL ? 1.15 : 1.2;
console.log(`  ratio ${(seconds / ideal).toFixed(3)} (goal <= ${goal}: ${seconds / ideal <= goal ? 'met' : 'NOT met'})`);
console.log(`  CPU during the run: ${cpu}`);
console.log(`  emulator: submitted ${c.submitted}, max in flight ${c.maxInFlight}, duplicates ${c.duplicateInputs}, status calls ${c.statusCalls}, result calls ${c.resultCalls}, connections opened ${c.connections}, status streams ${c.streamsOpened} (cut ${c.streamsCut})`);

if (process.env.BENCH_DETAIL) {
  const reqs = (await pipeline.emulator.requests()).sort((a, b) => a.submittedAt - b.submittedAt);
  const t0 = reqs[0]!.submittedAt;
  console.log(`  first submit ${t0 - calledAt} ms after the createTransitions call`);
  for (let k = 0; k < reqs.length; k += concurrency) {
    const round = reqs.slice(k, k + concurrency);
    const sub = round.map((r) => r.submittedAt - t0);
    const done = round.map((r) => (r.completedAt ?? 0) - t0);
    console.log(`  round ${k / concurrency}: submits ${Math.min(...sub)}..${Math.max(...sub)} ms, completions ${Math.min(...done)}..${Math.max(...done)} ms`);
  }
  // fal's own share: how much later than L after its submit the emulator (beside
  // the API) ended each request. Lateness here is the bench's load, not the pipeline's.
  const late = percentiles(reqs.filter((r) => r.completedAt).map((r) => r.completedAt! - r.submittedAt - latencyMs));
  console.log(`  emulator's own lateness (completion - submit - L): p50 ${late.p50} ms, p90 ${late.p90} ms, max ${late.max} ms`);
  // A freed slot's next submit: the i-th completion of a round against the i-th submit after it.
  const done = reqs.map((r) => r.completedAt ?? Infinity).sort((a, b) => a - b);
  const submits = reqs.map((r) => r.submittedAt).sort((a, b) => a - b).slice(concurrency);
  const handOver = percentiles(submits.map((s, i) => s - done[i]!));
  // One round (N <= C) hands no slot over: only the steps it has are printed.
  if (submits.length > 0) console.log(`  fal done -> next submit in that slot: p50 ${handOver.p50} ms, p90 ${handOver.p90} ms, max ${handOver.max} ms`);
  // The same hand-over in steps, from the ledger's clock (PostgreSQL's): when Segue noted fal was
  // done with a request, and when the next claim took the slot.
  const ledger = await pipeline.segue.db.falRequest.findMany({
    where: { requestId: { in: reqs.map((r) => r.requestId) } },
    select: { requestId: true, createdAt: true, endedAt: true },
  });
  const ended = ledger.map((l) => l.endedAt?.getTime() ?? Infinity).sort((a, b) => a - b);
  const claimed = ledger.map((l) => l.createdAt.getTime()).sort((a, b) => a - b).slice(concurrency);
  const steps = [
    ['fal done -> ledger ended', ended.map((e, i) => e - done[i]!)],
    ['ledger ended -> next claim', claimed.map((c, i) => c - ended[i]!)],
    ['next claim -> its submit at fal', submits.map((s, i) => s - claimed[i]!)],
  ] as const;
  for (const [what, values] of steps) {
    if (values.length === 0) continue;
    const q = percentiles([...values]);
    // Round by round (the i-th freed slot belongs to round floor(i / C) + 1): a warm-up shows here.
    const byRound: string[] = [];
    for (let k = 0; k < values.length; k += concurrency) byRound.push(String(percentiles(values.slice(k, k + concurrency)).p90));
    console.log(`    ${what}: p50 ${q.p50} ms, p90 ${q.p90} ms, max ${q.max} ms; p90 by round ${byRound.join(', ')}`);
  }
  // From fal's completion to the row's COMPLETED (webhook, wake-up, copy), per transition.
  const rows = await pipeline.segue.db.transition.findMany({
    where: { falRequestId: { in: reqs.map((r) => r.requestId) } },
    select: { falRequestId: true, completedAt: true },
  });
  const doneAt = new Map(rows.map((r) => [r.falRequestId, r.completedAt!.getTime()]));
  const lags = reqs.filter((r) => r.completedAt && doneAt.has(r.requestId)).map((r) => doneAt.get(r.requestId)! - r.completedAt!);
  const p = percentiles(lags);
  console.log(`  fal done -> COMPLETED (webhook, wake-up, copy): p50 ${p.p50} ms, p90 ${p.p90} ms, max ${p.max} ms`);
  // The same per request, in two steps (fal's done -> the ledger's end -> COMPLETED), and over
  // time: a lag that is the same for the first and the last says a wait, one that grows a backlog.
  const ledgerEnd = new Map(ledger.map((l) => [l.requestId, l.endedAt?.getTime()]));
  const tracked = reqs.filter((r) => r.completedAt && doneAt.has(r.requestId) && ledgerEnd.get(r.requestId)).sort((a, b) => a.completedAt! - b.completedAt!);
  const toLedger = percentiles(tracked.map((r) => ledgerEnd.get(r.requestId)! - r.completedAt!));
  const toCompleted = percentiles(tracked.map((r) => doneAt.get(r.requestId)! - ledgerEnd.get(r.requestId)!));
  console.log(`    per request: fal done -> ledger ended p50 ${toLedger.p50} ms, p90 ${toLedger.p90} ms; ledger ended -> COMPLETED p50 ${toCompleted.p50} ms, p90 ${toCompleted.p90} ms`);
  const places = [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1].flatMap((f) => tracked[Math.min(tracked.length - 1, Math.floor(f * tracked.length))] ?? []);
  console.log(`    lag by place in fal's completion order (0, 10, 25, 50, 75, 90, 100 %), to the ledger's end + to COMPLETED: ${places.map((r) => `${ledgerEnd.get(r.requestId)! - r.completedAt!}+${doneAt.get(r.requestId)! - ledgerEnd.get(r.requestId)!}`).join(', ')} ms`);
}
await pipeline.close();
