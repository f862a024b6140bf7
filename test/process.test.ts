import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, ROOT, run, tsx } from './helpers/process.ts';
import { until } from './helpers/wait.ts';

const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
const databases: string[] = [];
afterAll(async () => {
  if (databases.length === 0) return;
  await admin.connect();
  for (const db of databases) await admin.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
  await admin.end();
});

/** The Dockerfile's HEALTHCHECK, run as Docker runs it (sh -c, in the container's environment): its exit code. */
async function imageHealthcheck(env: Record<string, string>) {
  const line = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').split('\n').find((l) => l.startsWith('HEALTHCHECK '))!;
  return (await run('sh', ['-c', line.slice(line.indexOf(' CMD ') + ' CMD '.length)], env).exited).code;
}

describe('a worker started alone', () => {
  it('warns when it has neither PUBLIC_URL nor MEDIA_PUBLIC_URL for the media URLs it stores, and not once it has one', { timeout: 90_000 }, async () => {
    const started = /generation worker started/;
    const warning = /Set PUBLIC_URL to the API's address on every worker/;
    const port = String(await freePort());
    const env = {
      LOG_LEVEL: 'info',
      LOG_PRETTY: 'false',
      PORT: port,
      QUEUE_PREFIX: `alone${randomBytes(3).toString('hex')}`,
      FAL_KEY: undefined,
      STORAGE_DRIVER: 'local',
      MEDIA_DIR: mkdtempSync(join(tmpdir(), 'segue-alone-')),
      PUBLIC_URL: undefined,
      MEDIA_PUBLIC_URL: undefined,
    };
    const cases: Array<[string, Record<string, string | undefined>, boolean]> = [
      ['neither', {}, true],
      // As docker-compose.yml sets it: the API's address, even on localhost at the same port.
      ['PUBLIC_URL', { PUBLIC_URL: `http://localhost:${port}/` }, false],
      ['MEDIA_PUBLIC_URL', { MEDIA_PUBLIC_URL: `http://localhost:${port}/media` }, false],
    ];
    for (const [what, extra, warns] of cases) {
      const child = tsx('src/main.ts', ['worker'], { ...env, ...extra });
      try {
        await child.waitFor(started, 40_000);
        if (warns) {
          expect(child.output(), what).toMatch(warning);
          expect(child.output(), what).toMatch(new RegExp(`URLs under http://localhost:${port}/media,`));
        } else expect(child.output(), what).not.toMatch(warning);
      } finally {
        await child.stop('SIGTERM');
      }
    }
  });

  it("serves /health, /ready and /metrics on OPS_PORT, where the image's HEALTHCHECK finds it", { timeout: 90_000 }, async () => {
    const [port, opsPort] = [String(await freePort()), String(await freePort())];
    // As docker-compose.yml runs a worker: OPS_PORT set, nothing listening on PORT.
    const env = { PORT: port, OPS_PORT: opsPort };
    const healthcheck = () => imageHealthcheck(env);
    expect(await healthcheck(), 'nothing listening yet').toBe(1);
    const child = tsx('src/main.ts', ['worker'], {
      ...env,
      LOG_LEVEL: 'info',
      LOG_PRETTY: 'false',
      QUEUE_PREFIX: `ops${randomBytes(3).toString('hex')}`,
      FAL_KEY: undefined,
      PUBLIC_URL: `http://localhost:${port}/`,
    });
    try {
      await child.waitFor(new RegExp(`worker health and metrics on :${opsPort}`), 40_000);
      const base = `http://127.0.0.1:${opsPort}`;
      expect((await fetch(`${base}/health`)).status).toBe(200);
      const ready = await fetch(`${base}/ready`);
      expect(ready.status, await ready.clone().text()).toBe(200);
      expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/^segue_\w+/m);
      expect(await healthcheck(), 'a worker on OPS_PORT').toBe(0);
    } finally {
      await child.stop('SIGTERM');
    }
    expect(await healthcheck(), 'the worker stopped').toBe(1);
  });
});

describe('npm start', () => {
  it('creates and migrates a missing database, serves GraphiQL, and generates a video end to end without fal', { timeout: 120_000 }, async () => {
    const database = `segue_start_${randomBytes(4).toString('hex')}`;
    databases.push(database);
    const url = new URL(process.env.DATABASE_URL!);
    url.pathname = `/${database}`;
    const port = await freePort();
    const media = mkdtempSync(join(tmpdir(), 'segue-start-media-'));
    const child = run('npm', ['start'], {
      DATABASE_URL: url.toString(),
      PORT: String(port),
      // Unset, as on a developer's machine: npm start itself sets development.
      NODE_ENV: undefined,
      LOG_LEVEL: 'info',
      // A machine without a fal key, with its own queue and media folder.
      FAL_KEY: '',
      FAL_PROXY_URL: '',
      QUEUE_PREFIX: `start${randomBytes(3).toString('hex')}`,
      MEDIA_DIR: media,
    });
    try {
      await child.waitFor(/GraphiQL at http:\/\/localhost:\d+\/graphql/, 80_000);
      // It says the accept queue the kernel gives it, with advice when a reconnect burst would overflow it.
      const somaxconn = existsSync('/proc/sys/net/core/somaxconn') ? Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim()) : null;
      expect(child.output()).toMatch(new RegExp(`"acceptQueue":${somaxconn === null ? 'null' : Math.min(somaxconn, 65_535)}[,}]`));
      if (somaxconn !== null && somaxconn < 16_384) await child.waitFor(new RegExp(`net\\.core\\.somaxconn is ${somaxconn}: when more browsers`), 5_000);
      const page = await fetch(`http://127.0.0.1:${port}/graphql`, { headers: { accept: 'text/html' } });
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      expect(await page.text()).toMatch(/graphiql/i);
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      expect(health.status).toBe(200);
      expect(await imageHealthcheck({ PORT: String(port) }), "the image's HEALTHCHECK").toBe(0);

      // The README's first run: an account from the CLI, the sample images, the preview provider.
      const created = run('npm', ['run', 'cli', '--', 'accounts', 'create', 'first run', '--json'], { DATABASE_URL: url.toString() });
      expect((await created.exited).code).toBe(0);
      const { apiKey } = JSON.parse(created.stdout()) as { apiKey: string };
      const base = `http://localhost:${port}`;
      const post = async (query: string, variables = {}) =>
        (await (
          await fetch(`${base}/graphql`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
            body: JSON.stringify({ query, variables }),
          })
        ).json()) as { data: Record<string, unknown>; errors?: unknown[] };
      const mutation = await post('mutation($input: CreateTransitionsInput!) { createTransitions(input: $input) { transitions { id } } }', {
        input: {
          generate: true,
          transitions: [{ frontImageUrl: `${base}/samples/front.png`, tailImageUrl: `${base}/samples/tail.png`, prompt: 'day to night', transitionType: 'wipe' }],
        },
      });
      expect(mutation.errors).toBeUndefined();
      const done = await until(async () => {
        const res = await post('{ transitions(first: 1) { edges { node { status videoUrl } } } }');
        const node = (res.data.transitions as { edges: Array<{ node: { status: string; videoUrl: string | null } }> }).edges[0]!.node;
        return node.status === 'COMPLETED' ? node : null;
      }, { timeoutMs: 60_000, intervalMs: 500, what: 'the first video' });
      const video = await fetch(done.videoUrl!);
      expect(video.status).toBe(200);
      expect(video.headers.get('content-type')).toBe('video/mp4');
      expect((await video.arrayBuffer()).byteLength).toBeGreaterThan(10_000);
    } finally {
      await child.stop('SIGTERM');
    }
    // npm exits at once; the server logs its graceful stop a moment later on the same pipe.
    await until(() => /"msg":"stopped"/.test(child.output()), { timeoutMs: 10_000, what: 'a graceful stop' }).catch((error: Error) => {
      // What the process was doing when it did not stop in time.
      throw new Error(`${error.message}; its last output:\n${child.output().slice(-3_000)}`);
    });
    expect(child.output()).toMatch(/shutting down/);
  });
});

describe('configuration', () => {
  const bad: Array<[string, Record<string, string>, RegExp]> = [
    ['PORT', { PORT: 'eighty' }, /^Invalid configuration: PORT="eighty" /],
    ['DATABASE_URL', { DATABASE_URL: 'mysql://x' }, /^Invalid configuration: DATABASE_URL="mysql:\/\/x" must be a postgresql or postgres URL/],
    ['REDIS_URL', { REDIS_URL: 'http://localhost' }, /^Invalid configuration: REDIS_URL=/],
    ['FAL_MODEL', { FAL_MODEL: 'kling' }, /^Invalid configuration: FAL_MODEL="kling" must be a fal endpoint id/],
    [
      'QUEUE_PREFIX (on a Redis Cluster, without a hash tag)',
      { REDIS_URL: '', REDIS_CLUSTER_NODES: '127.0.0.1:7000', QUEUE_PREFIX: 'segue' },
      /^Invalid configuration: QUEUE_PREFIX="segue" needs a hash tag on Redis Cluster, e\.g\. \{segue\}/,
    ],
  ];
  it.each(bad)('a bad %s stops the process with one clear line', async (_name, env, message) => {
    const child = tsx('src/main.ts', ['api'], env);
    const exit = await child.exited;
    expect(exit.code).toBe(1);
    const lines = child.output().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
  });
});
