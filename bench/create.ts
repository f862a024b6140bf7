/**
 * createTransitions latency with 100 items per call, over HTTP against the real API and
 * PostgreSQL. `npx tsx bench/create.ts [requests=300] [concurrency=1]`. Goal: p99 <= 100 ms.
 */
import { createAccount } from '../src/domain/accounts.ts';
import { startApiServer } from '../src/http/server.ts';
import { createSegue } from '../src/runtime.ts';
import { benchConfig, ms, percentiles } from './lib.ts';

const requests = Number(process.argv[2] ?? 300);
const concurrency = Number(process.argv[3] ?? 1);
const generate = process.env.BENCH_GENERATE === 'true';

// The rate limiter stays on the path (one Redis call), with a limit this bench never reaches.
const segue = createSegue(benchConfig({ RATE_LIMIT_MUTATIONS_PER_MINUTE: '1000000' }));
const api = await startApiServer(segue);
const { apiKey } = await createAccount(segue.db, 'bench-create');

const query = `mutation($input: CreateTransitionsInput!) {
  createTransitions(input: $input) { transitions { id status } batch { id total } }
}`;
let n = 0;
const body = () =>
  JSON.stringify({
    query,
    variables: {
      input: {
        generate,
        transitions: Array.from({ length: 100 }, (_, i) => ({
          frontImageUrl: `https://images.example.com/${n}/${i}/front.png`,
          tailImageUrl: `https://images.example.com/${n}/${i}/tail.png`,
          prompt: `bench ${++n} ${i}`,
        })),
      },
    },
  });

async function call() {
  const started = performance.now();
  const response = await fetch(`${api.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
    body: body(),
  });
  const json = (await response.json()) as { errors?: unknown; data?: { createTransitions: { transitions: unknown[] } } };
  if (json.errors || json.data?.createTransitions.transitions.length !== 100) throw new Error(JSON.stringify(json.errors));
  return performance.now() - started;
}

for (let i = 0; i < 20; i++) await call(); // warm-up: JIT, connection pool, prepared plans
const samples: number[] = [];
const started = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (samples.length < requests) samples.push(await call());
  }),
);
const elapsed = (performance.now() - started) / 1000;
const p = percentiles(samples);
console.log(`createTransitions, 100 items per call${generate ? ', generate: true' : ''}, concurrency ${concurrency}`);
console.log(`  calls ${p.n}   p50 ${ms(p.p50)}   p90 ${ms(p.p90)}   p99 ${ms(p.p99)}   max ${ms(p.max)}`);
console.log(`  ${(p.n / elapsed).toFixed(1)} calls/s = ${((p.n * 100) / elapsed).toFixed(0)} transitions/s`);
console.log(`  goal p99 <= 100 ms: ${p.p99 <= 100 ? 'met' : 'NOT met'}`);
await api.close();
await segue.close();
