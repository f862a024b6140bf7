/**
 * Live progress under load: `npx tsx bench/subscriptions.ts [subscribers=1000] [eventsPerSecond=200] [seconds=10] [clientProcesses=4] [burst=10000]`.
 * An API process (a child, so its memory is its own) serves WebSocket subscribers spread over a
 * few client processes; each subscriber follows one batch of 20 transitions (50 batches).
 *
 * 1. Burst (skipped with burst=0): `burst` idle subscribers connect at once, as browsers do after
 *    an API restart, to an API started with BURST_NODE_OPTIONS (default --max-old-space-size=256).
 *    Reported: how many connected and got their snapshot, how many received the next event of
 *    their batch, and the API's RSS growth per subscriber (goal <= 16 KB). SQL_DETAIL=1: the
 *    burst API also counts its round trips (bench/count-roundtrips.ts, under tsx), and the SQL
 *    statements and Redis commands per subscriber are printed, by kind; tsx costs memory per
 *    subscriber, so take the RSS figures from a run without it.
 *    BENCH_FIELDS=console: subscribers ask for what the web console shows, not only `id version`.
 * 2. Latency: `subscribers` subscribers on a fresh API (API_NODE_OPTIONS); this process commits
 *    state changes at the given rate through the state machine. Reported: latency from commit to
 *    receipt at the client (goal p99 <= 50 ms) and the API process's RSS (goal <= 200 MB).
 * BENCH_TRANSPORT=sse: the subscribers use server-sent events (graphql-sse, one stream each)
 * instead of WebSocket, for both parts.
 */
import { fork, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createAccount } from '../src/domain/accounts.ts';
import { createTransitions } from '../src/domain/transitions.ts';
import { changeTransition } from '../src/domain/state-machine.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { createSegue } from '../src/runtime.ts';
import type { Counts } from './count-roundtrips.ts';
import { benchConfig, ms, percentiles, segueMetrics } from './lib.ts';

const subscriberCount = Number(process.argv[2] ?? 1000);
const rate = Number(process.argv[3] ?? 200);
const seconds = Number(process.argv[4] ?? 10);
const clientProcesses = Number(process.argv[5] ?? 4);
const burstCount = Number(process.argv[6] ?? 10_000);
const BATCHES = 50;
const transport = process.env.BENCH_TRANSPORT === 'sse' ? 'SSE' : 'WebSocket';
const now = () => performance.timeOrigin + performance.now();

const config = benchConfig({ QUEUE_PREFIX: `subbench${process.pid}` });
const segue = createSegue(config);
const port = 4300 + (process.pid % 500);

// Data: 10 accounts, 5 batches of 20 each, every transition SUBMITTED (so queue positions can change).
const batches: Array<{ apiKey: string; batchId: string; rows: Array<{ id: string; run: number }> }> = [];
const noJobs = { ...segue, generationJobs: { enqueue: async () => undefined } as never };
for (let a = 0; a < BATCHES / 5; a++) {
  const { account, apiKey } = await createAccount(segue.db, `sub-bench-${a}`);
  for (let b = 0; b < 5; b++) {
    const { transitions, batch } = await createTransitions(noJobs, account.id, {
      generate: true,
      transitions: Array.from({ length: 20 }, (_, i) => ({
        frontImageUrl: 'https://images.example.com/f.png',
        tailImageUrl: 'https://images.example.com/t.png',
        prompt: `sub bench ${a}.${b}.${i}`,
      })),
    });
    for (const t of transitions) await changeTransition(segue, t, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date() }, { from: ['QUEUED'] });
    batches.push({ apiKey, batchId: encodeId('Batch', batch!.id), rows: transitions.map((t) => ({ id: t.id, run: t.run })) });
  }
}

// API_ENTRY=dist/main.js runs the compiled build (npm run build) instead of the sources under tsx.
const entry = process.env.API_ENTRY ? [process.env.API_ENTRY] : ['--import', 'tsx', 'src/main.ts'];
const flagsOf = (value: string) => value.split(' ').filter(Boolean);

interface Api {
  pid: number;
  flags: string[];
  rss(): number;
  alive(): boolean;
  stop(): Promise<void>;
}

async function startApi(flags: string[], countsDir?: string): Promise<Api> {
  const counting = countsDir ? ['--import', 'tsx', '--import', './bench/count-roundtrips.ts'] : [];
  const api = spawn(process.execPath, [...flags, ...counting, ...entry, 'api'], {
    env: { ...process.env, ...(countsDir ? { BENCH_COUNTS: countsDir } : {}), DATABASE_URL: config.databaseUrl, PORT: String(port), HOST: '127.0.0.1', QUEUE_PREFIX: config.queuePrefix, LOG_LEVEL: 'warn', LOG_PRETTY: 'false', SUBSCRIPTIONS_PER_ACCOUNT: '100000' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let exited = false;
  api.once('exit', () => (exited = true));
  // Ready once it answers /ready (it logs at warn only, so its output is not waited for).
  for (;;) {
    if (exited) throw new Error('the API process exited at start');
    const ok = await fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.ok, () => false);
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  // BENCH_API_LOG=<file>: the API's log (warnings and errors) kept there; otherwise dropped.
  if (process.env.BENCH_API_LOG) api.stdout.pipe(createWriteStream(process.env.BENCH_API_LOG));
  else api.stdout.resume();
  return {
    pid: api.pid!,
    flags,
    rss: () => {
      // NaN once it has exited, or while it is dying (its status then has no VmRSS line, or none at all).
      if (exited) return NaN;
      try {
        return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${api.pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
      } catch {
        return NaN;
      }
    },
    alive: () => !exited,
    async stop() {
      if (exited) return;
      api.kill('SIGTERM');
      await new Promise((r) => api.once('exit', r));
    },
  };
}

/** A counter of the kernel's network statistics (/proc/net/netstat) for this network namespace, every listener in it; NaN where there is none. */
function kernelCounter(group: string, name: string): number {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
    const at = lines.findIndex((line) => line.startsWith(`${group}:`));
    return Number(lines[at + 1]!.split(/\s+/)[lines[at]!.split(/\s+/).indexOf(name)]);
  } catch {
    return NaN;
  }
}

/** The API's heap and off-heap figures (MB), read from its Prometheus metrics. */
async function memoryOf() {
  const value = await segueMetrics(`http://127.0.0.1:${port}/metrics`);
  return ['nodejs_heap_size_used_bytes', 'nodejs_heap_size_total_bytes', 'nodejs_external_memory_bytes', 'process_resident_memory_bytes']
    .map((n) => `${n.replace(/^nodejs_|_bytes$/g, '')} ${(value(n) / 2 ** 20).toFixed(0)}`)
    .join(', ');
}

/** V8's spaces, used of committed (MB): where a heap's slack is. */
async function heapSpacesOf() {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
  const of = (kind: string, space: string) => Number(new RegExp(`^segue_nodejs_heap_space_size_${kind}_bytes\\{space="${space}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20;
  return ['new', 'old', 'code', 'map', 'large_object']
    .map((space) => `${space} ${of('used', space).toFixed(0)}/${of('total', space).toFixed(0)}`)
    .join(', ');
}

type ClientMessage = { type: string; receipts?: Array<[string, number, number]>; error?: string; connected?: number; reconnects?: number; closes?: Record<string, number>; loopDelayMaxMs?: number };

/**
 * Client processes holding `count` subscribers (subscriber i follows batch i % 50), all connecting
 * at once; with `retry`, each reconnects as graphql-ws does in a browser.
 */
function startClients(count: number, onReceipts: (r: Array<[string, number, number]>, client: number) => void, retry = false) {
  let ready = 0;
  const loopDelays: number[] = [];
  let errors = 0;
  const connected = new Map<number, number>();
  const reconnects = new Map<number, number>();
  const closes = new Map<number, Record<string, number>>();
  const clients = Array.from({ length: clientProcesses }, () => fork('bench/subscriptions-client.ts', [], { execArgv: ['--import', 'tsx'] }));
  const allReady = new Promise<void>((resolve) => {
    clients.forEach((client, k) => {
      client.on('message', (m: ClientMessage) => {
        if (m.type === 'ready' && ++ready === clients.length) resolve();
        if (m.type === 'connected') {
          connected.set(k, m.connected!);
          reconnects.set(k, m.reconnects!);
          closes.set(k, m.closes ?? {});
        }
        if (m.type === 'receipts') onReceipts(m.receipts!, k);
        if (m.loopDelayMaxMs !== undefined) loopDelays[k] = m.loopDelayMaxMs;
        if (m.type === 'error' && errors++ < 5) console.error('subscriber error', m.error);
      });
    });
  });
  clients.forEach((client, k) => {
    const mine = Array.from({ length: count }, (_, i) => i).filter((i) => i % clientProcesses === k);
    client.send({ url: `ws://127.0.0.1:${port}/graphql`, retry, subscribers: mine.map((i) => ({ apiKey: batches[i % BATCHES]!.apiKey, batchId: batches[i % BATCHES]!.batchId })) });
  });
  return {
    allReady,
    connected: () => [...connected.values()].reduce((a, b) => a + b, 0),
    reconnects: () => [...reconnects.values()].reduce((a, b) => a + b, 0),
    /** Connections that ended before the run did, by close code and socket error, over all client processes: what the reconnects answered. */
    closes: () => {
      const all: Record<string, number> = {};
      for (const byCode of closes.values()) for (const [code, n] of Object.entries(byCode)) all[code] = (all[code] ?? 0) + n;
      return Object.entries(all).map(([code, n]) => `${code} × ${n}`).join(', ') || 'none';
    },
    errors: () => errors,
    /** From now on, each client process measures its event-loop delay. */
    startMeasuring: () => clients.forEach((c) => c.send({ type: 'reset' })),
    /** Each client process's longest event-loop delay since startMeasuring (ms; NaN if it did not say), once stopped. */
    loopDelays: () => Array.from({ length: clientProcesses }, (_, k) => loopDelays[k] ?? NaN),
    async stop() {
      await Promise.all(clients.map((c) => new Promise<void>((resolve) => {
        c.on('message', (m: ClientMessage) => m.type === 'stopped' && resolve());
        c.send({ type: 'stop' });
      })));
      for (const c of clients) c.kill();
    },
  };
}

// Data changes go through the state machine, as the worker's do.
let position = 0;
const touch = (n: number) => {
  const batch = batches[n % BATCHES]!;
  const row = batch.rows[Math.floor(n / BATCHES) % 20]!;
  return changeTransition(segue, row, 'SUBMITTED', { queuePosition: position++ % 1000 }, { from: ['SUBMITTED'] });
};

/** What a counting API sent so far (count-roundtrips.ts writes it on SIGUSR2): waits for a fresh write. */
async function countsOf(api: Api, dir: string): Promise<Counts> {
  const file = join(dir, `${api.pid}.json`);
  const writtenAt = () => (existsSync(file) ? statSync(file).mtimeMs : 0);
  const before = writtenAt();
  process.kill(api.pid, 'SIGUSR2');
  for (let waited = 0; ; waited += 50) {
    if (waited > 10_000) throw new Error('the API did not write its counts');
    await new Promise((r) => setTimeout(r, 50));
    if (writtenAt() === before) continue;
    // Written in place: read once it parses whole.
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as Counts;
    } catch {
      continue;
    }
  }
}

const perSubscriberByKind = (after: Record<string, number>, before: Record<string, number>, n: number) =>
  Object.entries(after)
    .map(([kind, count]) => [kind, (count - (before[kind] ?? 0)) / n] as const)
    .filter(([, each]) => each >= 0.01)
    .sort((a, b) => b[1] - a[1])
    .map(([kind, each]) => `${each.toFixed(2)} ${kind}`)
    .join('; ');

if (burstCount > 0) {
  const countsDir = process.env.SQL_DETAIL ? mkdtempSync(join(tmpdir(), 'segue-counts-')) : undefined;
  const api = await startApi(flagsOf(process.env.BURST_NODE_OPTIONS ?? '--max-old-space-size=256'), countsDir);
  await new Promise((r) => setTimeout(r, 1000));
  const rssIdle = api.rss();
  const countsBefore = countsDir ? await countsOf(api, countsDir) : null;
  if (process.env.BENCH_DETAIL) console.log(`  API memory idle: ${await memoryOf()}; heap spaces used/total: ${await heapSpacesOf()}`);
  let peak = rssIdle;
  const peakTimer = setInterval(() => api.alive() && (peak = Math.max(peak, api.rss())), 250);
  let deliveries = 0;
  const overflowsBefore = kernelCounter('TcpExt', 'ListenOverflows');
  const started = now();
  // Browsers reconnect (graphql-ws' retries): a connection the kernel resets when the accept
  // queue overflows (net.core.somaxconn) comes back; how many did is printed.
  const clients = startClients(burstCount, (r) => (deliveries += r.length), true);
  const deadline = started + 300_000;
  // Waits until every subscriber has its snapshot, the API dies, or nothing moves for 30 s.
  let last = -1;
  let movedAt = now();
  let allSubscribed = false;
  while (api.alive() && now() < deadline && now() - movedAt < 30_000) {
    const done = await Promise.race([clients.allReady.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 5000))]);
    if (done) {
      allSubscribed = true;
      break;
    }
    const c = clients.connected() + clients.errors();
    console.log(`  burst: ${clients.connected()}/${burstCount} subscribed, ${clients.errors()} failed after ${((now() - started) / 1000).toFixed(0)} s, API RSS ${api.rss().toFixed(0)} MB`);
    if (c !== last) movedAt = now();
    last = c;
  }
  const setupSeconds = (now() - started) / 1000;
  const countsAfter = countsDir && api.alive() ? await countsOf(api, countsDir) : null;
  // Every client process said all its subscribers have their snapshot; the running count they
  // send every 200 ms may predate the last few.
  const subscribed = allSubscribed ? burstCount : clients.connected();
  // Idle for a while, as the subscribers are: V8's memory reducer collects the burst's garbage.
  await new Promise((r) => setTimeout(r, 15_000));
  const rssConnected = api.rss();
  // BENCH_DETAIL=1: where the API's memory is, from its own metrics (JS heap, off-heap buffers).
  if (process.env.BENCH_DETAIL && api.alive()) console.log(`  API memory: ${await memoryOf()}; heap spaces used/total: ${await heapSpacesOf()}`);
  // HEAP_SNAPSHOT=1 (with --heapsnapshot-signal=SIGUSR2 in BURST_NODE_OPTIONS): a heap snapshot of
  // the API with every subscriber connected, written to its working directory.
  if (process.env.HEAP_SNAPSHOT && api.alive()) {
    process.kill(api.pid, 'SIGUSR2');
    await new Promise((r) => setTimeout(r, 20_000));
  }
  // The next event of every batch: each subscriber should receive exactly one.
  if (api.alive()) for (let n = 0; n < BATCHES; n++) await touch(n);
  await new Promise((r) => setTimeout(r, 3000));
  clearInterval(peakTimer);
  const alive = api.alive();
  await clients.stop();
  const perSubscriber = ((rssConnected - rssIdle) * 1024) / burstCount;
  console.log(`subscriptions burst: ${burstCount} idle ${transport} subscribers connecting at once in ${clientProcesses} client processes`);
  console.log(`  API process: node ${[...api.flags, ...entry].join(' ')} api: ${alive ? 'alive' : 'DIED'}`);
  console.log(`  subscribed (snapshot received): ${subscribed}/${burstCount} in ${setupSeconds.toFixed(1)} s; reconnects ${clients.reconnects()} (why: ${clients.closes()}); subscriptions failed ${clients.errors()}`);
  console.log(`  received the next event of their batch: ${deliveries}/${burstCount}`);
  const overflows = kernelCounter('TcpExt', 'ListenOverflows') - overflowsBefore;
  const somaxconn = existsSync('/proc/sys/net/core/somaxconn') ? readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim() : 'unknown';
  console.log(`  kernel: net.core.somaxconn ${somaxconn}; connections dropped over a full accept queue during the burst (ListenOverflows, this network namespace) ${overflows}`);
  console.log(`  API RSS: ${rssIdle.toFixed(0)} MB idle, ${rssConnected.toFixed(0)} MB with subscribers, ${peak.toFixed(0)} MB peak; growth ${perSubscriber.toFixed(1)} KB per subscriber (goal <= 16 KB: ${alive && subscribed === burstCount && perSubscriber <= 16 ? 'met' : 'NOT met'})`);
  if (countsBefore && countsAfter) {
    const n = burstCount;
    console.log(`  round trips per subscriber, connect → snapshot: ${((countsAfter.statements - countsBefore.statements) / n).toFixed(2)} SQL statements, ${((Object.values(countsAfter.redis).reduce((a, b) => a + b, 0) - Object.values(countsBefore.redis).reduce((a, b) => a + b, 0)) / n).toFixed(2)} Redis commands`);
    console.log(`    SQL: ${perSubscriberByKind(countsAfter.sql, countsBefore.sql, n)}`);
    console.log(`    Redis: ${perSubscriberByKind(countsAfter.redis, countsBefore.redis, n) || 'none'}`);
  }
  await api.stop();
  if (countsDir) rmSync(countsDir, { recursive: true, force: true });
}

if (subscriberCount > 0) {
  const countsDir = process.env.SQL_DETAIL ? mkdtempSync(join(tmpdir(), 'segue-counts-')) : undefined;
  const api = await startApi(flagsOf(process.env.API_NODE_OPTIONS ?? ''), countsDir);
  const rssIdle = api.rss();
  const received: Array<[string, number, number, number]> = [];
  const clients = startClients(subscriberCount, (r, k) => received.push(...r.map(([id, version, at]) => [id, version, at, k] as [string, number, number, number])));
  await clients.allReady;
  const rssConnected = api.rss();
  // Where a late event was held up: each process's longest event-loop delay over the run (the
  // API's from its metrics, which restart at each read). Each is sampled every 10 ms (as
  // prom-client does by default) and counts the interval itself: the interval is taken off.
  const SAMPLED_MS = 10;
  const apiLoopLagMs = async () => (await segueMetrics(`http://127.0.0.1:${port}/metrics`))('nodejs_eventloop_lag_max_seconds') * 1000 - SAMPLED_MS;
  await apiLoopLagMs();
  clients.startMeasuring();
  const benchLoopDelay = monitorEventLoopDelay({ resolution: SAMPLED_MS });
  benchLoopDelay.enable();
  const countsBefore = countsDir ? await countsOf(api, countsDir) : null;

  // Commit `rate` changes per second, spread evenly; remember when each (id, version) committed.
  const committed = new Map<string, number>();
  let maxRss = rssConnected;
  const rssTimer = setInterval(() => (maxRss = Math.max(maxRss, api.rss())), 250);
  const total = rate * seconds;
  const started = now();
  const inFlight: Promise<unknown>[] = [];
  for (let n = 0; n < total; n++) {
    const due = started + (n * 1000) / rate;
    const wait = due - now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inFlight.push(
      touch(n).then((changed) => {
        if (changed) committed.set(`${changed.id}:${changed.version}`, now());
      }),
    );
  }
  await Promise.all(inFlight);
  const achieved = total / ((now() - started) / 1000);
  await new Promise((r) => setTimeout(r, 1500));
  clearInterval(rssTimer);
  const apiLoopLag = await apiLoopLagMs();
  const countsAfter = countsDir ? await countsOf(api, countsDir) : null;
  await clients.stop();

  const latencies: number[] = [];
  let unmatched = 0;
  // Events over the goal, by the second of the run they were committed in and by client process.
  const lateBySecond = new Array<number>(seconds + 1).fill(0);
  const lateByClient = new Array<number>(clientProcesses).fill(0);
  for (const [id, version, at, k] of received) {
    const uuid = Buffer.from(id, 'base64url').toString().split(':')[1];
    const t = committed.get(`${uuid}:${version}`);
    if (t === undefined) unmatched++;
    else {
      latencies.push(Math.max(0, at - t));
      if (at - t > 50) {
        lateBySecond[Math.min(seconds, Math.floor((t - started) / 1000))]! += 1;
        lateByClient[k]! += 1;
      }
    }
  }
  const expected = total * (subscriberCount / BATCHES);
  const p = percentiles(latencies);
  console.log(`subscriptions: ${subscriberCount} ${transport} subscribers in ${clientProcesses} client processes, ${BATCHES} batches (${subscriberCount / BATCHES} subscribers each)${process.env.BENCH_FIELDS === 'console' ? ", asking for the console's fields" : ''}`);
  console.log(`  ${total} commits at ${achieved.toFixed(0)}/s for ${seconds} s -> ${received.length} deliveries (expected ${expected}, unmatched ${unmatched})`);
  console.log(`  commit -> client latency: p50 ${ms(p.p50)}  p90 ${ms(p.p90)}  p99 ${ms(p.p99)}  max ${ms(p.max)} (goal p99 <= 50 ms: ${p.p99 <= 50 ? 'met' : 'NOT met'})`);
  console.log(`  over 50 ms: ${lateByClient.reduce((a, b) => a + b, 0)} deliveries; by second committed [${lateBySecond.join(' ')}]; by client process [${lateByClient.join(' ')}]`);
  console.log(`  longest event-loop stall: API ${ms(apiLoopLag)}, this process (commits) ${ms(benchLoopDelay.max / 1e6 - SAMPLED_MS)}, client processes ${clients.loopDelays().map((d) => ms(d - SAMPLED_MS)).join(' ')}`);
  console.log(`  API process: node ${[...api.flags, ...entry].join(' ')} api${process.env.MALLOC_ARENA_MAX ? `, MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX}` : ''}`);
  console.log(`  API RSS: ${rssIdle.toFixed(0)} MB idle, ${rssConnected.toFixed(0)} MB with subscribers, ${maxRss.toFixed(0)} MB peak (goal <= 200 MB: ${maxRss <= 200 ? 'met' : 'NOT met'})`);
  if (countsBefore && countsAfter) {
    const statements = countsAfter.statements - countsBefore.statements;
    console.log(`  API SQL statements while it delivered: ${statements} (${(statements / Math.max(1, received.length)).toFixed(3)} per delivery): ${perSubscriberByKind(countsAfter.sql, countsBefore.sql, 1) || 'none'}`);
  }
  await api.stop();
  if (countsDir) rmSync(countsDir, { recursive: true, force: true });
}
await segue.close();
process.exit(0);
