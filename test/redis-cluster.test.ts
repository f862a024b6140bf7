import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisRateLimiter } from '../src/http/rate-limit.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { redactedConfig } from '../src/logger.ts';
import { createRedis } from '../src/redis.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { startFalEmulator, type FalEmulator } from '../tools/fal-emulator/index.ts';
import { createTestAccount, gql, testConfig, type Overrides } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions, TransitionUpdated } from './helpers/operations.ts';
import { freePort, tsx, type Child } from './helpers/process.ts';
import { startRedisCluster, type RedisCluster } from './helpers/redis-cluster.ts';
import { sseClient, subscribe, wsClient, type Subscription } from './helpers/subscribe.ts';
import { until } from './helpers/wait.ts';

const CAP = 10;
const PER_BATCH = 100;

let cluster: RedisCluster | undefined;
let emulator: FalEmulator | undefined;
let segue: Segue | undefined;
let mediaDir: string | undefined;
const children: Child[] = [];

/** Every process of this file talks to the cluster only: REDIS_URL is unset, the prefix is the default. */
let env: Overrides;

async function startApi(port: number) {
  const child = tsx('src/main.ts', ['api'], { ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', LOG_PRETTY: 'false' });
  children.push(child);
  await child.waitFor(/GraphiQL at/, 45_000);
  return { child, url: `http://127.0.0.1:${port}`, graphqlUrl: `http://127.0.0.1:${port}/graphql` };
}

async function startWorker() {
  const child = tsx('src/main.ts', ['worker'], { ...env, LOG_LEVEL: 'info', LOG_PRETTY: 'false' });
  children.push(child);
  await child.waitFor(/generation worker started/, 45_000);
  return child;
}

beforeAll(async () => {
  [cluster, emulator] = await Promise.all([startRedisCluster(3), startFalEmulator({ latencyMs: 1200 })]);
  mediaDir = mkdtempSync(join(tmpdir(), 'segue-media-'));
  env = {
    REDIS_URL: '',
    REDIS_CLUSTER_NODES: cluster.nodes.join(','),
    QUEUE_PREFIX: '',
    MEDIA_DIR: mediaDir,
    FAL_KEY: 'test-key',
    FAL_PROXY_URL: emulator.url,
    FAL_JWKS_URL: emulator.jwksUrl,
    FAL_CONCURRENCY: String(CAP),
    // Three workers of 4 hold 12 jobs at most: the cap (10) binds, and no worker can take it all.
    WORKER_CONCURRENCY: '4',
    FAL_POLL_INTERVAL_MS: '50',
    FAL_POLL_MAX_INTERVAL_MS: '200',
    FAL_RETRY_DELAY_MS: '100',
    FAL_SUBMIT_TIMEOUT_MS: '3000',
    WORKER_LOCK_DURATION_MS: '3000',
    WORKER_STALLED_INTERVAL_MS: '1000',
    RECONCILE_INTERVAL_MS: '1000',
  };
  segue = createSegue(testConfig(env));
}, 60_000);

afterAll(async () => {
  await Promise.all(children.map((c) => c.stop('SIGKILL')));
  await segue?.close();
  await emulator?.close();
  await cluster?.stop();
  if (mediaDir) rmSync(mediaDir, { recursive: true, force: true });
});

type Update = { id: string; status: string; version: number; videoUrl?: string | null };

describe('Segue on a Redis Cluster', () => {
  it(
    'two API processes and three workers on a 3-master cluster: 200 transitions complete under the fal cap, and subscribers on both APIs see every transition to COMPLETED',
    { timeout: 120_000 },
    async () => {
      expect(segue!.config.queuePrefix).toBe('{segue}');
      const [portOne, portTwo] = [await freePort(), await freePort()];
      // Workers write videos where the API serves them.
      env.MEDIA_PUBLIC_URL = `http://127.0.0.1:${portOne}/media`;
      // The work waits (BullMQ's pause, on the cluster) until the subscribers are attached, so the
      // five processes can start at once.
      await segue!.generationJobs.ready();
      await segue!.generationJobs.queue.pause();
      const [one, two, ...workers] = await Promise.all([startApi(portOne), startApi(portTwo), startWorker(), startWorker(), startWorker()]);
      const account = await createTestAccount(segue!);

      // One batch of 100 through each API (a call takes at most 100 items).
      const created = await Promise.all(
        [one, two].map((api) => gql(api.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: transitionInputs(PER_BATCH), generate: true } })),
      );
      for (const res of created) expect(res.errors).toBeUndefined();
      const batches = created.map((res) => ({
        id: res.data!.createTransitions.batch!.id,
        transitionIds: res.data!.createTransitions.transitions.map((t) => t.id),
      }));

      // Each batch followed on both APIs: over WebSocket on one, over SSE on the other.
      const ws = wsClient(one.graphqlUrl, account.apiKey);
      const sse = sseClient(two.graphqlUrl, account.apiKey);
      const streams: Array<{ on: string; batch: (typeof batches)[number]; sub: Subscription<Update> }> = [];
      for (const batch of batches) {
        streams.push({ on: 'WebSocket, API one', batch, sub: subscribe(ws, TransitionUpdated, { batchId: batch.id }, (d) => d.transitionUpdated) });
        streams.push({ on: 'SSE, API two', batch, sub: subscribe(sse, TransitionUpdated, { batchId: batch.id }, (d) => d.transitionUpdated) });
      }
      // Subscribed at Redis before the snapshot: once it is in, no later change can be missed.
      await until(() => streams.every((s) => s.sub.events.length >= PER_BATCH), { timeoutMs: 30_000, what: 'the snapshots on both APIs' });

      // The queue as any client sees it, sampled from API two while the work runs: fal requests in
      // flight (the ledger's count) against the cap, and the workers online, counted from every node's
      // CLIENT LIST.
      const samples: Array<{ falInFlight: number; falConcurrency: number; workersOnline: number }> = [];
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          const res = await fetch(two.graphqlUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${account.apiKey}` },
            body: JSON.stringify({ query: '{ queueStats { falInFlight falConcurrency workersOnline } }' }),
          });
          samples.push(((await res.json()) as { data: { queueStats: (typeof samples)[number] } }).data.queueStats);
          await new Promise((r) => setTimeout(r, 200));
        }
      })().catch((error: unknown) => error);
      await segue!.generationJobs.queue.resume();
      await Promise.all(streams.map((s) => s.sub.done));
      sampling = false;
      expect(await sampler).toBeUndefined();

      for (const { on, batch, sub } of streams) {
        expect(sub.errors, on).toEqual([]);
        const last = new Map<string, Update>();
        const seen = new Map<string, Set<string>>();
        for (const event of sub.events) {
          // Versions only go up, per transition.
          expect(event.version, `${on}: ${event.id}`).toBeGreaterThan(last.get(event.id)?.version ?? 0);
          last.set(event.id, event);
          seen.set(event.id, (seen.get(event.id) ?? new Set()).add(event.status));
        }
        expect([...last.keys()].sort(), on).toEqual([...batch.transitionIds].sort());
        for (const [id, event] of last) {
          expect(event.status, `${on}: ${id}`).toBe('COMPLETED');
          expect(event.videoUrl, `${on}: ${id}`).toBeTruthy();
        }
        // Live, not only the final state: every transition was seen running, on both APIs (a
        // stream behind by more than a run shows the newest row, so runs last 1.2 s here: under a
        // loaded CI machine a stream lagged more than 600 ms).
        const sawRunning = [...seen.values()].filter((s) => s.has('SUBMITTED') || s.has('IN_PROGRESS')).length;
        expect(sawRunning, on).toBe(PER_BATCH);
      }
      await ws.dispose();
      sse.dispose();

      const rows = await segue!.db.transition.findMany({ where: { accountId: account.id } });
      expect(rows).toHaveLength(2 * PER_BATCH);
      expect(rows.every((r) => r.status === 'COMPLETED')).toBe(true);
      const fal = emulator!.counters();
      expect(fal.submitted).toBe(2 * PER_BATCH);
      expect(fal.duplicateInputs).toBe(0);
      expect(fal.maxInFlight).toBeLessThanOrEqual(CAP);
      // The work was shared by the three workers.
      const submits = workers.map((w) => (w.output().match(/submitted to fal/g) ?? []).length);
      expect(submits.every((n) => n > 0), `submits per worker: ${submits}`).toBe(true);
      expect(submits.reduce((a, b) => a + b, 0)).toBe(2 * PER_BATCH);
      // The cap bound: 10 requests in flight (the workers' 12 jobs include staged ones), never more.
      expect(Math.max(...samples.map((s) => s.falInFlight))).toBe(CAP);
      expect(samples.every((s) => s.falConcurrency === CAP)).toBe(true);
      expect(Math.max(...samples.map((s) => s.workersOnline))).toBe(3);

      // Every queue key lives in the {segue} slot, on one node; nothing was written elsewhere.
      const probe = createRedis(segue!.config.redis, 'client') as Cluster;
      try {
        await new Promise((resolve) => probe.once('ready', resolve));
        const slot = Number(await probe.cluster('KEYSLOT', '{segue}'));
        const keysByNode = await Promise.all(probe.nodes('master').map((node) => node.keys('*')));
        const keys = keysByNode.flat();
        expect(keys.some((k) => k.startsWith('{segue}:generation:'))).toBe(true);
        expect(keysByNode.filter((k) => k.length > 0)).toHaveLength(1);
        for (const key of keys) expect(Number(await probe.cluster('KEYSLOT', key)), key).toBe(slot);
      } finally {
        probe.disconnect();
      }
    },
  );
});

describe('configuration for a Redis Cluster', () => {
  const load = (extra: Overrides) => loadConfig({ NODE_ENV: 'test', ...extra });

  it('REDIS_CLUSTER_NODES lists seed nodes as host:port or URLs; credentials and TLS apply to every node', () => {
    const config = load({ REDIS_CLUSTER_NODES: 'a.example:7000, rediss://u:p%40ss@b.example:7001,c.example' });
    expect(config.redis).toEqual({
      mode: 'cluster',
      nodes: ['rediss://u:p%40ss@a.example:7000', 'rediss://u:p%40ss@b.example:7001', 'rediss://u:p%40ss@c.example:6379'],
    });
    expect(load({}).redis).toEqual({ mode: 'single', url: 'redis://127.0.0.1:6379' });
    // The configuration a debug log prints masks the nodes' password like any URL's.
    expect(JSON.stringify(redactedConfig(config))).not.toContain('p%40ss');
  });

  it('on a cluster the queue prefix defaults to {segue}, and a prefix without a hash tag is refused', () => {
    expect(load({ REDIS_CLUSTER_NODES: '127.0.0.1:7000' }).queuePrefix).toBe('{segue}');
    expect(load({ REDIS_CLUSTER_NODES: '127.0.0.1:7000', QUEUE_PREFIX: 'studio{a}' }).queuePrefix).toBe('studio{a}');
    expect(load({}).queuePrefix).toBe('segue');
    for (const prefix of ['segue', '{}segue', 'se}gue{']) {
      expect(() => load({ REDIS_CLUSTER_NODES: '127.0.0.1:7000', QUEUE_PREFIX: prefix })).toThrow(
        new RegExp(`^Invalid configuration: QUEUE_PREFIX=${JSON.stringify(prefix).replace(/[{}]/g, '\\$&')} needs a hash tag on Redis Cluster`),
      );
    }
  });

  it('refuses REDIS_URL together with REDIS_CLUSTER_NODES, nodes that are not host:port, and mixed credentials, never echoing a password', () => {
    const refused = (extra: Overrides) => {
      try {
        load(extra);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as Error).message;
      }
      throw new Error('accepted');
    };
    expect(refused({ REDIS_URL: 'redis://127.0.0.1:6379', REDIS_CLUSTER_NODES: '127.0.0.1:7000' })).toMatch(/REDIS_URL are both set/);
    expect(refused({ REDIS_CLUSTER_NODES: 'http://x:1' })).toMatch(/neither host:port nor a redis:\/\/ URL/);
    expect(refused({ REDIS_CLUSTER_NODES: 'redis://x:7000/2' })).toMatch(/no database number/);
    const mixed = refused({ REDIS_CLUSTER_NODES: 'redis://:secret1@a:7000,redis://:secret2@b:7000' });
    expect(mixed).toMatch(/different credentials/);
    expect(mixed).not.toMatch(/secret/);
  });

  it('limits mutations on the cluster too (the rate limiter\'s script runs there; it lets calls through only when Redis fails)', async () => {
    const limiter = redisRateLimiter(() => segue!.generationJobs, segue!.config.queuePrefix, 2, segue!.logger)!;
    const accountId = `cluster-${Date.now()}`;
    expect([await limiter.take(accountId), await limiter.take(accountId)]).toEqual([0, 0]);
    const wait = await limiter.take(accountId);
    expect(wait).toBeGreaterThanOrEqual(59);
    expect(wait).toBeLessThanOrEqual(60);
  });
});
