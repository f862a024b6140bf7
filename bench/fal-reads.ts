/**
 * CPU per read of a request's status or result, as a worker sends it (node:http, fal-http.ts)
 * against the same read through the fal client's fetch (what the worker used before):
 * `npx tsx bench/fal-reads.ts [requests=1000] [inFlight=100] [rounds=6]`.
 * The emulator runs in a process of its own, so only the caller's CPU is counted; the two ways
 * take turns, round by round (each first in every other round), on the same finished requests.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createFalClient } from '@fal-ai/client';
import { loadConfig } from '../src/config.ts';
import { withDeadline } from '../src/providers/deadline.ts';
import { getResult, getStatus } from '../src/providers/fal-http.ts';
import { percentiles } from './lib.ts';

const requests = Number(process.argv[2] ?? 1000);
const inFlight = Number(process.argv[3] ?? 100);
const rounds = Number(process.argv[4] ?? 6);
const MODEL = 'fal-ai/kling-video/v2.1/pro/image-to-video';

const emulator = spawn(process.execPath, ['--import', 'tsx', 'tools/fal-emulator/main.ts', '--port', '0', '--latency', '0', '--api-key', 'bench-key'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
process.once('exit', () => emulator.kill('SIGKILL'));
let banner = '';
for await (const chunk of emulator.stdout!) {
  banner += String(chunk);
  if (banner.includes('listening on')) break;
}
const url = /listening on (\S+)/.exec(banner)![1]!;
const { fal } = loadConfig({ ...process.env, NODE_ENV: 'development', FAL_KEY: 'bench-key', FAL_PROXY_URL: url });
const client = createFalClient({ credentials: fal.key!, proxyUrl: { url, when: 'always' }, suppressLocalCredentialsWarning: true });

/** Runs `call` once per id, `inFlight` at a time. */
async function each(ids: string[], call: (id: string) => Promise<unknown>) {
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < ids.length) await call(ids[next++]!);
  }));
}

const ids: string[] = [];
await each(Array.from({ length: requests }, (_, i) => String(i)), async (i) => {
  const queued = await client.queue.submit(MODEL, { input: { prompt: `read ${i}`, image_url: 'https://example.com/a.png', tail_image_url: 'https://example.com/b.png' } });
  ids.push(queued.request_id);
});
// Read only once fal (latency 0) has finished them all: the last submitted is the last to end.
for (;;) {
  const status = await withDeadline(fal.callTimeoutMs, undefined, (signal) => getStatus(fal, ids.at(-1)!, signal));
  if (status.status === 'COMPLETED') break;
  await new Promise((r) => setTimeout(r, 50));
}

// Both ways under the same per-call deadline, as the provider sends them.
const ways = {
  result: {
    'fal client (fetch)': (id: string) => withDeadline(fal.callTimeoutMs, undefined, (signal) => client.queue.result(MODEL, { requestId: id, abortSignal: signal })),
    'node:http': (id: string) => withDeadline(fal.callTimeoutMs, undefined, (signal) => getResult(fal, id, signal)),
  },
  status: {
    'fal client (fetch)': (id: string) => withDeadline(fal.callTimeoutMs, undefined, (signal) => client.queue.status(MODEL, { requestId: id, abortSignal: signal })),
    'node:http': (id: string) => withDeadline(fal.callTimeoutMs, undefined, (signal) => getStatus(fal, id, signal)),
  },
};

console.log(`fal reads: ${requests} finished requests, ${inFlight} reads in flight, ${rounds} rounds per way (taking turns); this process's CPU (user + system) per read`);
for (const [call, pair] of Object.entries(ways)) {
  const figures: Record<string, number[]> = {};
  for (const read of Object.values(pair)) await each(ids.slice(0, inFlight), read); // warm-up: connections, JIT
  for (let round = 0; round < rounds; round++) {
    // Each way goes first in every other round: garbage one leaves is collected in either's turn.
    const order = Object.entries(pair);
    if (round % 2 === 1) order.reverse();
    for (const [way, read] of order) {
      const before = process.cpuUsage();
      await each(ids, read);
      const used = process.cpuUsage(before);
      (figures[way] ??= []).push((used.user + used.system) / requests);
    }
  }
  for (const [way, values] of Object.entries(figures)) {
    const p = percentiles(values);
    console.log(`  ${call.padEnd(6)} ${way.padEnd(18)} min ${Math.min(...values).toFixed(0)} µs, median ${p.p50.toFixed(0)} µs, max ${p.max.toFixed(0)} µs`);
  }
}
emulator.kill('SIGTERM');
await once(emulator, 'exit');
process.exit(0);
