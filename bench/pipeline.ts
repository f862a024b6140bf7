import { randomBytes } from 'node:crypto';
import { createAccount } from '../src/domain/accounts.ts';
import { createAndGenerate } from '../src/domain/generation.ts';
import { TERMINAL } from '../src/domain/statuses.ts';
import { startApiServer } from '../src/http/server.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import type { FalEmulatorOptions } from '../tools/fal-emulator/index.ts';
import { startBenchEmulator } from './emulator-process.ts';
import { dropQueueKeys } from '../test/helpers/pipeline.ts';
import { makeImage, startImageServer } from '../test/helpers/images.ts';
import { benchConfig } from './lib.ts';
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The pipeline for a benchmark: the API (webhooks) in this process; the fal emulator and the workers as child processes. */
export async function startBenchPipeline(options: { emulator: FalEmulatorOptions; env: Record<string, string>; workers: number }) {
  const emulator = await startBenchEmulator(options.emulator);
  const prefix = `bench${randomBytes(3).toString('hex')}`;
  const env: Record<string, string> = {
    QUEUE_PREFIX: prefix,
    FAL_KEY: 'bench-key',
    FAL_PROXY_URL: emulator.url,
    FAL_JWKS_URL: emulator.jwksUrl,
    LOG_LEVEL: 'warn',
    LOG_PRETTY: 'false',
    ...options.env,
  };
  const segue = createSegue(benchConfig(env));
  const api = await startApiServer(segue);
  if (env.WEBHOOKS !== 'false') env.PUBLIC_URL = api.url;
  env.DATABASE_URL = segue.config.databaseUrl;
  const children: import('node:child_process').ChildProcess[] = [];
  // A bench that crashes takes its workers with it (they would keep loading the machine).
  process.once('exit', () => children.forEach((c) => c.kill('SIGKILL')));
  for (let i = 0; i < options.workers; i++) {
    // WORKER_PROF=<dir> writes a CPU profile of each worker there.
    const profile = process.env.WORKER_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.WORKER_PROF}`] : [];
    // BENCH_COUNTS=<dir>: each worker counts its round trips there (bench/count-roundtrips.ts, loaded
    // through tsx, also in front of a built worker: it answers the SIGUSR2 that asks for counts).
    const counting = process.env.BENCH_COUNTS ? ['--import', './bench/count-roundtrips.ts'] : [];
    // WORKER_ENTRY=dist/main.js runs the compiled build (npm run build:server), as production does.
    const tsx = !process.env.WORKER_ENTRY || counting.length > 0 ? ['--import', 'tsx'] : [];
    const entry = [...tsx, ...counting, process.env.WORKER_ENTRY ?? 'src/main.ts'];
    // The worker logs (JSON, info level) straight into a file: a pipe read by this busy process
    // would fill and stall the worker's synchronous log writes. WORKER_LOG=<file> keeps them.
    const logFile = process.env.WORKER_LOG ?? join(tmpdir(), `segue-bench-worker-${process.pid}-${i}.log`);
    const out = openSync(logFile, 'a');
    const startedAt = statSync(logFile).size;
    // WORKER_NODE_OPTIONS: node flags for the workers, e.g. the Docker image's heap flags.
    const flags = (process.env.WORKER_NODE_OPTIONS ?? '').split(' ').filter(Boolean);
    const child = spawn(process.execPath, [...flags, ...profile, ...entry, 'worker'], {
      env: { ...process.env, ...env, LOG_LEVEL: process.env.WORKER_LOG_LEVEL ?? 'info' },
      stdio: ['ignore', out, 'inherit'],
    });
    closeSync(out);
    let exited = false;
    child.once('exit', () => (exited = true));
    for (;;) {
      if (exited) throw new Error(`worker exited (its log: ${logFile})`);
      const text = readFileSync(logFile, 'utf8').slice(startedAt);
      if (text.includes('generation worker started')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!process.env.WORKER_LOG) process.once('exit', () => rmSync(logFile, { force: true }));
    children.push(child);
  }
  return {
    segue,
    emulator,
    env,
    /** The worker processes (their pids, for memory figures). */
    workers: children,
    async account() {
      return (await createAccount(segue.db, 'bench')).account;
    },
    async close() {
      for (const c of children) c.kill('SIGTERM');
      await Promise.all(children.map((c) => new Promise((r) => c.once('exit', r))));
      await api.close();
      await segue.close();
      await emulator.close();
      await dropQueueKeys(segue.config.redis, prefix);
    },
  };
}

/**
 * Two real images on 127.0.0.1 every bench transition shares, as most batches share a few images:
 * workers fetch and check each URL once (checks before spending), then reuse the verdict.
 */
let shared: Promise<{ front: string; tail: string }> | null = null;
export function benchImages() {
  shared ??= (async () => {
    const server = await startImageServer();
    return {
      front: server.set('/front.png', await makeImage({ width: 640, height: 360, color: '#e0a040' })),
      tail: server.set('/tail.png', await makeImage({ width: 640, height: 360, color: '#203060' })),
    };
  })();
  return shared;
}

/** Generates n transitions (as batches of 100) and resolves when all have ended, with the time. */
export async function generateAndWait(segue: Segue, accountId: string, n: number, prompt: string) {
  const images = await benchImages();
  const started = performance.now();
  // As a client would: the calls of 100 go out together.
  const calls = Array.from({ length: Math.ceil(n / 100) }, (_, k) => k * 100);
  const batchIds = await Promise.all(calls.map(async (i) => {
    const size = Math.min(100, n - i);
    const { batch } = await createAndGenerate(segue, accountId, {
      transitions: Array.from({ length: size }, (_, j) => ({
        frontImageUrl: images.front,
        tailImageUrl: images.tail,
        prompt: `${prompt} ${i + j}`,
      })),
    });
    return batch!.id;
  }));
  const enqueued = performance.now();
  // The bench's own progress queries (one statement each), for figures that leave them out.
  let polls = 0;
  for (;;) {
    polls += 1;
    const open = await segue.db.transition.count({
      where: { batchId: { in: batchIds }, status: { notIn: [...TERMINAL] } },
    });
    if (open === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const done = performance.now();
  const completed = await segue.db.transition.count({ where: { batchId: { in: batchIds }, status: 'COMPLETED' } });
  return { seconds: (done - started) / 1000, enqueueSeconds: (enqueued - started) / 1000, completed, polls: polls + 1 };
}
