import { randomBytes } from 'node:crypto';
import { createAccount } from '../src/domain/accounts.ts';
import { createAndGenerate } from '../src/domain/generation.ts';
import { TERMINAL } from '../src/domain/batches.ts';
import { startApiServer } from '../src/http/server.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { startFalEmulator, type FalEmulatorOptions } from '../tools/fal-emulator/index.ts';
import { dropQueueKeys } from '../test/helpers/pipeline.ts';
import { benchConfig } from './lib.ts';
import { spawn } from 'node:child_process';

/** The pipeline for a benchmark: emulator + API (webhooks) in this process, workers as child processes. */
export async function startBenchPipeline(options: { emulator: FalEmulatorOptions; env: Record<string, string>; workers: number }) {
  const emulator = await startFalEmulator(options.emulator);
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
    const child = spawn(process.execPath, [...profile, '--import', 'tsx', 'src/main.ts', 'worker'], {
      env: { ...process.env, ...env, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('generation worker started') && resolve());
      child.once('exit', () => reject(new Error('worker exited')));
    });
    children.push(child);
  }
  return {
    segue,
    emulator,
    env,
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

/** Generates n transitions (as batches of 100) and resolves when all have ended, with the time. */
export async function generateAndWait(segue: Segue, accountId: string, n: number, prompt: string) {
  const started = performance.now();
  // As a client would: the calls of 100 go out together.
  const calls = Array.from({ length: Math.ceil(n / 100) }, (_, k) => k * 100);
  const batchIds = await Promise.all(calls.map(async (i) => {
    const size = Math.min(100, n - i);
    const { batch } = await createAndGenerate(segue, accountId, {
      transitions: Array.from({ length: size }, (_, j) => ({
        frontImageUrl: `https://images.example.com/${i + j}/front.png`,
        tailImageUrl: `https://images.example.com/${i + j}/tail.png`,
        prompt: `${prompt} ${i + j}`,
      })),
    });
    return batch!.id;
  }));
  const enqueued = performance.now();
  for (;;) {
    const open = await segue.db.transition.count({
      where: { batchId: { in: batchIds }, status: { notIn: [...TERMINAL] } },
    });
    if (open === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const done = performance.now();
  const completed = await segue.db.transition.count({ where: { batchId: { in: batchIds }, status: 'COMPLETED' } });
  return { seconds: (done - started) / 1000, enqueueSeconds: (enqueued - started) / 1000, completed };
}
