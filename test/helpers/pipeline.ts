import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'ioredis';
import type { RedisTarget } from '../../src/config.ts';
import { createRedis } from '../../src/redis.ts';
import { startFalEmulator, type FalEmulator, type FalEmulatorOptions } from '../../tools/fal-emulator/index.ts';
import { TERMINAL } from '../../src/domain/statuses.ts';
import type { Transition } from '../../src/generated/prisma/client.ts';
import { createSegue, type Segue } from '../../src/runtime.ts';
import { startWorker, type RunningWorker } from '../../src/worker/worker.ts';
import { createTestAccount, startTestApp, testConfig, type Overrides, type TestAccount, type TestApp } from './app.ts';
import { freePort, tsx, type Child } from './process.ts';
import { until } from './wait.ts';

/**
 * The whole pipeline for a test: the fal emulator, the API, and workers (in this process or as
 * child processes), on a queue prefix of their own so test files never share jobs.
 */
export interface Pipeline {
  emulator: FalEmulator;
  app: TestApp;
  env: Overrides;
  /** Workers running in this process. */
  inline: Array<{ segue: Segue; worker: RunningWorker; shared?: boolean }>;
  children: Child[];
  startInlineWorker(extra?: Overrides): Promise<{ segue: Segue; worker: RunningWorker }>;
  startChildWorker(extra?: Overrides): Promise<Child>;
  account(): Promise<TestAccount>;
  /** Waits until every transition of the batch has ended; returns the rows. */
  settled(batchId: string, timeoutMs?: number): Promise<Transition[]>;
  close(): Promise<void>;
}

export interface PipelineOptions {
  env?: Overrides;
  emulator?: FalEmulatorOptions;
  /** Set PUBLIC_URL to the API so fal's webhooks come back to it. */
  webhooks?: boolean;
  inlineWorkers?: number;
  childWorkers?: number;
  /** A worker on the API's own runtime, as `npm start` runs them (one process, one /metrics). */
  apiWorker?: boolean;
}

export async function startPipeline(options: PipelineOptions = {}): Promise<Pipeline> {
  const emulator = await startFalEmulator({ latencyMs: 100, ...options.emulator });
  const mediaDir = mkdtempSync(join(tmpdir(), 'segue-media-'));
  const env: Overrides = {
    QUEUE_PREFIX: `t${randomBytes(4).toString('hex')}`,
    MEDIA_DIR: mediaDir,
    FAL_KEY: 'test-key',
    FAL_PROXY_URL: emulator.url,
    FAL_JWKS_URL: emulator.jwksUrl,
    FAL_POLL_INTERVAL_MS: '50',
    FAL_POLL_MAX_INTERVAL_MS: '200',
    FAL_RETRY_DELAY_MS: '100',
    FAL_SUBMIT_TIMEOUT_MS: '3000',
    WORKER_LOCK_DURATION_MS: '3000',
    WORKER_STALLED_INTERVAL_MS: '1000',
    RECONCILE_INTERVAL_MS: '1000',
    ...options.env,
  };
  // The API's port is chosen first: workers build media URLs that the API serves.
  const port = await freePort();
  env.MEDIA_PUBLIC_URL = `http://127.0.0.1:${port}/media`;
  const app = await startTestApp({ ...env, PORT: String(port) });
  if (options.webhooks) env.PUBLIC_URL = app.url;
  const inline: Pipeline['inline'] = [];
  const children: Child[] = [];

  const pipeline: Pipeline = {
    emulator,
    app,
    env,
    inline,
    children,
    async startInlineWorker(extra = {}) {
      const segue = createSegue(testConfig({ ...env, ...extra }));
      const worker = await startWorker(segue);
      const entry = { segue, worker };
      inline.push(entry);
      return entry;
    },
    async startChildWorker(extra = {}) {
      const child = tsx('src/main.ts', ['worker'], { ...env, LOG_LEVEL: 'info', LOG_PRETTY: 'false', ...extra });
      await child.waitFor(/generation worker started/, 30_000);
      children.push(child);
      return child;
    },
    account: () => createTestAccount(app.segue),
    async settled(batchId, timeoutMs = 60_000) {
      return until(
        async () => {
          const rows = await app.segue.db.transition.findMany({ where: { batchId }, orderBy: { id: 'asc' } });
          return rows.length > 0 && rows.every((r) => TERMINAL.includes(r.status)) ? rows : null;
        },
        { timeoutMs, intervalMs: 100, what: `batch ${batchId} to end` },
      );
    },
    async close() {
      await Promise.all(children.map((c) => c.stop('SIGKILL')));
      for (const { segue, worker, shared } of inline) {
        await worker.close();
        if (!shared) await segue.close();
      }
      await app.close();
      await emulator.close();
      await dropQueueKeys(app.segue.config.redis, env.QUEUE_PREFIX!);
      rmSync(mediaDir, { recursive: true, force: true });
    },
  };
  if (options.apiWorker) inline.push({ segue: app.segue, worker: await startWorker(app.segue), shared: true });
  for (let i = 0; i < (options.inlineWorkers ?? 0); i++) await pipeline.startInlineWorker();
  for (let i = 0; i < (options.childWorkers ?? 0); i++) await pipeline.startChildWorker();
  return pipeline;
}

/** Removes every key of a test's queue prefix (on a cluster, from every master). */
export async function dropQueueKeys(target: RedisTarget | string, prefix: string) {
  const redis = createRedis(target, 'client', { maxRetriesPerRequest: 1 });
  try {
    if (redis instanceof Cluster) await new Promise((resolve, reject) => redis.once('ready', resolve).once('end', reject));
    for (const server of redis instanceof Cluster ? redis.nodes('master') : [redis]) {
      let cursor = '0';
      do {
        const [next, keys] = await server.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        // On a cluster the prefix's hash tag puts every key in one slot: one DEL may take them all.
        if (keys.length) await server.del(...keys);
      } while (cursor !== '0');
    }
  } catch {
    /* Redis may be the one a test stopped */
  } finally {
    redis.disconnect();
  }
}
