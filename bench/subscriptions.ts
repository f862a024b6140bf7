/**
 * Live progress under load: `npx tsx bench/subscriptions.ts [subscribers=1000] [eventsPerSecond=200] [seconds=10] [clientProcesses=4]`.
 * An API process (a child, so its memory is its own) serves WebSocket subscribers spread over a
 * few client processes; each subscriber follows one batch of 20 transitions (50 batches, 20
 * subscribers each). This process commits state changes at the given rate through the state
 * machine. Reported: latency from commit to receipt at the client (goal p99 <= 50 ms) and the API
 * process's RSS (goal <= 200 MB).
 */
import { fork, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createAccount } from '../src/domain/accounts.ts';
import { createTransitions } from '../src/domain/transitions.ts';
import { changeTransition } from '../src/domain/state-machine.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { createSegue } from '../src/runtime.ts';
import { benchConfig, ms, percentiles } from './lib.ts';

const subscriberCount = Number(process.argv[2] ?? 1000);
const rate = Number(process.argv[3] ?? 200);
const seconds = Number(process.argv[4] ?? 10);
const clientProcesses = Number(process.argv[5] ?? 4);
const BATCHES = 50;
const now = () => performance.timeOrigin + performance.now();

const config = benchConfig({ QUEUE_PREFIX: `subbench${process.pid}` });
const segue = createSegue(config);
const port = 4300 + (process.pid % 500);

// Data: 10 accounts, 5 batches of 20 each, every transition SUBMITTED (so queue positions can change).
const batches: Array<{ apiKey: string; batchId: string; rows: Array<{ id: string; run: number }> }> = [];
const noJobs = { ...segue, jobs: { enqueue: async () => undefined } as never };
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

// API_NODE_OPTIONS, e.g. "--max-semi-space-size=2 --max-old-space-size=128", tunes the API's V8 heap.
const apiFlags = (process.env.API_NODE_OPTIONS ?? '').split(' ').filter(Boolean);
// API_ENTRY=dist/main.js runs the compiled build (npm run build) instead of the sources under tsx.
const entry = process.env.API_ENTRY ? [process.env.API_ENTRY] : ['--import', 'tsx', 'src/main.ts'];
const api = spawn(process.execPath, [...apiFlags, ...entry, 'api'], {
  env: { ...process.env, DATABASE_URL: config.databaseUrl, PORT: String(port), HOST: '127.0.0.1', QUEUE_PREFIX: config.queuePrefix, LOG_LEVEL: 'info', LOG_PRETTY: 'false', SUBSCRIPTIONS_PER_ACCOUNT: '10000' },
  stdio: ['ignore', 'pipe', 'inherit'],
});
await new Promise<void>((resolve) => api.stdout.on('data', (d: Buffer) => d.toString().includes('GraphiQL at') && resolve()));
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${api.pid}/status`, 'utf8'))![1]) / 1024;
const rssIdle = rss();

const received: Array<[string, number, number]> = [];
const clients = Array.from({ length: clientProcesses }, () => fork('bench/subscriptions-client.ts', [], { execArgv: ['--import', 'tsx'] }));
let ready = 0;
const allReady = new Promise<void>((resolve) => {
  for (const client of clients) {
    client.on('message', (m: { type: string; receipts?: Array<[string, number, number]>; error?: string }) => {
      if (m.type === 'ready' && ++ready === clients.length) resolve();
      if (m.type === 'receipts') received.push(...m.receipts!);
      if (m.type === 'error') console.error('subscriber error', m.error);
    });
  }
});
clients.forEach((client, k) => {
  const subscribers = Array.from({ length: subscriberCount }, (_, i) => i).filter((i) => i % clientProcesses === k);
  client.send({ url: `ws://127.0.0.1:${port}/graphql`, subscribers: subscribers.map((i) => ({ apiKey: batches[i % BATCHES]!.apiKey, batchId: batches[i % BATCHES]!.batchId })) });
});
await allReady;
const rssConnected = rss();

// Commit `rate` changes per second, spread evenly; remember when each (id, version) committed.
const committed = new Map<string, number>();
let maxRss = rssConnected;
const rssTimer = setInterval(() => (maxRss = Math.max(maxRss, rss())), 250);
const total = rate * seconds;
const started = now();
let position = 0;
const inFlight: Promise<unknown>[] = [];
for (let n = 0; n < total; n++) {
  const due = started + (n * 1000) / rate;
  const wait = due - now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const batch = batches[n % BATCHES]!;
  const row = batch.rows[Math.floor(n / BATCHES) % 20]!;
  inFlight.push(
    changeTransition(segue, row, 'SUBMITTED', { queuePosition: position++ % 1000 }, { from: ['SUBMITTED'] }).then((changed) => {
      if (changed) committed.set(`${changed.id}:${changed.version}`, now());
    }),
  );
}
await Promise.all(inFlight);
const achieved = total / ((now() - started) / 1000);
await new Promise((r) => setTimeout(r, 1500));
clearInterval(rssTimer);

await Promise.all(clients.map((c) => new Promise<void>((resolve) => {
  c.on('message', (m: { type: string }) => m.type === 'stopped' && resolve());
  c.send({ type: 'stop' });
})));
const latencies: number[] = [];
let unmatched = 0;
for (const [id, version, at] of received) {
  const uuid = Buffer.from(id, 'base64url').toString().split(':')[1];
  const t = committed.get(`${uuid}:${version}`);
  if (t === undefined) unmatched++;
  else latencies.push(Math.max(0, at - t));
}
const expected = total * (subscriberCount / BATCHES);
const p = percentiles(latencies);
console.log(`subscriptions: ${subscriberCount} WebSocket subscribers in ${clientProcesses} client processes, ${BATCHES} batches (${subscriberCount / BATCHES} subscribers each)`);
console.log(`  ${total} commits at ${achieved.toFixed(0)}/s for ${seconds} s -> ${received.length} deliveries (expected ${expected}, unmatched ${unmatched})`);
console.log(`  commit -> client latency: p50 ${ms(p.p50)}  p90 ${ms(p.p90)}  p99 ${ms(p.p99)}  max ${ms(p.max)} (goal p99 <= 50 ms: ${p.p99 <= 50 ? 'met' : 'NOT met'})`);
console.log(`  API process: node ${[...apiFlags, ...entry].join(' ')} api${process.env.MALLOC_ARENA_MAX ? `, MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX}` : ''}`);
console.log(`  API RSS: ${rssIdle.toFixed(0)} MB idle, ${rssConnected.toFixed(0)} MB with subscribers, ${maxRss.toFixed(0)} MB peak (goal <= 200 MB: ${maxRss <= 200 ? 'met' : 'NOT met'})`);
for (const c of clients) c.kill();
api.kill('SIGTERM');
await new Promise((r) => api.once('exit', r));
await segue.close();
process.exit(0);
