import { execFileSync } from 'node:child_process';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { getNamedType, isObjectType, type GraphQLObjectType } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cancelBatch } from '../src/domain/generation.ts';
import { encodeId, idOf } from '../src/graphql/ids.ts';
import { schema } from '../src/graphql/schema.ts';
import { createTestAccount, gql, startTestApp } from './helpers/app.ts';
import { CreateApiKey } from './helpers/credential-operations.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { freePort, ROOT, run } from './helpers/process.ts';

let p: Pipeline;
beforeAll(async () => {
  // fal takes 20 s here: what a test starts stays in flight while it looks.
  p = await startPipeline({ emulator: { latencyMs: 20_000 }, env: { WORKER_CONCURRENCY: '6' }, inlineWorkers: 1 });
  // The compiled server, as production runs it.
  execFileSync('npm', ['run', 'build:server', '--loglevel=warn'], { cwd: ROOT, stdio: 'pipe', timeout: 120_000 });
}, 180_000);
afterAll(() => p?.close());

/** `node dist/main.js api` with exactly this environment (nothing inherited but PATH), until it listens. */
async function bareApi(env: Record<string, string>) {
  const port = await freePort();
  const child = run(process.execPath, ['dist/main.js', 'api'], {
    ...Object.fromEntries(Object.keys(process.env).map((k) => [k, undefined])),
    PATH: process.env.PATH!,
    HOST: '127.0.0.1',
    PORT: String(port),
    ...env,
  });
  await child.waitFor(/API listening/, 30_000);
  const url = `http://127.0.0.1:${port}`;
  return { child, url, graphqlUrl: url + '/graphql' };
}

const QueueStatsAll = `{ queueStats { byStatus { status count } queue { waiting active delayed failed } falInFlight falConcurrency workersOnline } }`;

/** Every field name reachable from a type, recursively. */
function fieldNames(type: GraphQLObjectType, seen = new Set<string>()): string[] {
  if (seen.has(type.name)) return [];
  seen.add(type.name);
  return Object.values(type.getFields()).flatMap((field) => {
    const named = getNamedType(field.type);
    return [field.name, ...(isObjectType(named) ? fieldNames(named, seen) : [])];
  });
}

describe('tenant boundaries', () => {
  it("queueStats shows an account its own transitions and the shared queue figures, never a worker's host or process id", { timeout: 60_000 }, async () => {
    const [mine, theirs] = [await createTestAccount(p.app.segue), await createTestAccount(p.app.segue)];
    const created = await gql(p.app.graphqlUrl, mine.apiKey, CreateTransitions, { input: { transitions: transitionInputs(2), generate: true } });
    const batchId = idOf('Batch', created.data!.createTransitions.batch!.id);
    await gql(p.app.graphqlUrl, theirs.apiKey, CreateTransitions, { input: { transitions: transitionInputs(3) } });

    const res = await fetch(p.app.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${mine.apiKey}` },
      body: JSON.stringify({ query: QueueStatsAll }),
    });
    const text = await res.text();
    const stats = (JSON.parse(text) as { data: { queueStats: { byStatus: Array<{ count: number }>; workersOnline: number; falConcurrency: number } } }).data.queueStats;
    expect(stats.byStatus.reduce((n, s) => n + s.count, 0)).toBe(2);
    expect(stats.workersOnline).toBeGreaterThanOrEqual(1);
    expect(stats.falConcurrency).toBe(10);
    expect(text).not.toContain(hostname());
    expect(text).not.toContain(String(process.pid));
    const reachable = fieldNames(schema.getType('QueueStats') as GraphQLObjectType);
    expect(reachable.filter((name) => /host|pid|address|worker(s)?$/i.test(name))).toEqual([]);

    // Operators read them straight from PostgreSQL and Redis, without any API key.
    const cli = run('npm', ['run', 'cli', '--', 'queue', 'stats', '--all', '--json'], { ...p.env, SEGUE_API_KEY: '' });
    expect((await cli.exited).code).toBe(0);
    const all = JSON.parse(cli.stdout()) as {
      byStatus: Array<{ count: number }>;
      accounts: Array<{ name: string; queued: number; running: number }>;
      workers: Array<{ host: string; pid: number }>;
    };
    expect(all.byStatus.reduce((n, s) => n + s.count, 0)).toBeGreaterThanOrEqual(5);
    expect(all.workers).toEqual(expect.arrayContaining([expect.objectContaining({ host: hostname(), pid: process.pid })]));
    expect(all.accounts).toEqual([expect.objectContaining({ accountId: encodeId('Account', mine.id), queued: 0, running: 2 })]);
    // Nothing left running for the rest of the file.
    await cancelBatch(p.app.segue, mine.id, batchId);
    // With nothing open, the text says so rather than leaving the busiest accounts out unsaid.
    const quiet = run('npm', ['run', 'cli', '--', 'queue', 'stats', '--all'], { ...p.env, SEGUE_API_KEY: '' });
    expect((await quiet.exited).code).toBe(0);
    expect(quiet.stdout()).toMatch(/^busiest accounts: none \(no transition is queued or running\)$/m);
  });

  it('a bare `node dist/main.js api` (no NODE_ENV) refuses images on 127.0.0.1 and other private addresses, creating nothing', { timeout: 60_000 }, async () => {
    const api = await bareApi({ DATABASE_URL: process.env.DATABASE_URL!, REDIS_URL: process.env.REDIS_URL!, LOG_LEVEL: 'info', QUEUE_PREFIX: p.env.QUEUE_PREFIX! });
    try {
      const account = await createTestAccount(p.app.segue);
      const create = (urls: { frontImageUrl: string; tailImageUrl: string }) =>
        gql(api.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: [{ ...urls, prompt: 'ssrf?' }] } });
      const refused = await create({ frontImageUrl: `${api.url}/samples/front.png`, tailImageUrl: 'http://169.254.169.254/latest/meta-data/' });
      expect(refused.errors?.map((e) => e.extensions?.code)).toEqual(['BAD_USER_INPUT']);
      expect(refused.errors![0]!.extensions!.fields).toEqual(['transitions.0.frontImageUrl', 'transitions.0.tailImageUrl']);
      for (const url of ['http://localhost:4000/a.png', 'http://[::1]/a.png', 'http://10.0.0.8/a.png', 'http://[::ffff:127.0.0.1]/a.png', 'http://0x7f.1/a.png']) {
        const res = await create({ frontImageUrl: 'https://images.example.com/a.png', tailImageUrl: url });
        expect(res.errors?.[0]?.extensions?.fields, url).toEqual(['transitions.0.tailImageUrl']);
      }
      expect(await p.app.segue.db.transition.count({ where: { accountId: account.id } })).toBe(0);
      const accepted = await create({ frontImageUrl: 'https://images.example.com/a.png', tailImageUrl: 'https://images.example.com/b.png' });
      expect(accepted.errors).toBeUndefined();
      // Production's other defaults hold too: no GraphiQL page.
      const page = await fetch(`${api.url}/graphql`, { headers: { accept: 'text/html' } });
      expect(page.headers.get('content-type') ?? '').not.toMatch(/text\/html/);
    } finally {
      await api.child.stop('SIGKILL');
    }
  });

  it('the configuration logged at debug holds no secret: fal key, admin token, database and Redis passwords, S3 secret, TOKEN_SECRET', { timeout: 60_000 }, async () => {
    const database = new URL(process.env.DATABASE_URL!);
    database.password = 'pg-secret-pw'; // trust authentication ignores it; the URL carries it all the same
    const redis = new URL(process.env.REDIS_URL!);
    redis.password = 'redis-secret-pw';
    const secrets = {
      FAL_KEY: 'fal-key-id:fal-secret-0123456789',
      ADMIN_TOKEN: 'admin-secret-0123456789abcdef',
      TOKEN_SECRET: 'token-secret-0123456789abcdef0123456789',
      S3_ACCESS_KEY_ID: 'AKIASECRETACCESSKEYID',
      S3_SECRET_ACCESS_KEY: 's3-secret-0123456789abcdef',
    };
    const api = await bareApi({
      ...secrets,
      NODE_ENV: 'production',
      LOG_LEVEL: 'debug',
      DATABASE_URL: database.toString(),
      REDIS_URL: redis.toString(),
      QUEUE_PREFIX: `c${randomBytes(3).toString('hex')}`,
      STORAGE_DRIVER: 's3',
      S3_BUCKET: 'segue-secrets-test',
      S3_ENDPOINT: 'http://127.0.0.1:1',
    });
    try {
      // A request carrying a key, and a key made: neither the credential nor the new secret is logged.
      const account = await createTestAccount(p.app.segue);
      const made = await gql(api.graphqlUrl, account.apiKey, CreateApiKey, { input: { name: 'logged?' } });
      const newSecret = made.data!.createApiKey.secret;
      await fetch(`${api.url}/admin/queues`, { headers: { authorization: `Bearer ${secrets.ADMIN_TOKEN}` } });
      await api.child.waitFor(/"msg":"configuration"/);
      const logged = api.child.output();
      const config = logged.split('\n').find((line) => line.includes('"msg":"configuration"'))!;
      // The configuration is there, with its secrets replaced.
      expect(config).toContain('segue-secrets-test');
      expect(config).toMatch(/postgresql:\/\/postgres:\*\*\*@/);
      expect(config).toMatch(/redis:\/\/:\*\*\*@/);
      expect(config).toMatch(/"key":"\[redacted\]"/);
      for (const value of [...Object.values(secrets), 'pg-secret-pw', 'redis-secret-pw', account.apiKey, newSecret, 'fal-secret']) {
        expect(logged, value).not.toContain(value);
      }
    } finally {
      await api.child.stop('SIGKILL');
    }
  });

  it('the queue dashboard refuses state-changing requests from another site (403, nothing changes); the site itself and scripts pass', async () => {
    const token = 'admin-token-for-csrf-0123456789';
    const app = await startTestApp({ ADMIN_TOKEN: token, QUEUE_PREFIX: `a${randomBytes(3).toString('hex')}` });
    try {
      const auth = { authorization: `Basic ${Buffer.from(`admin:${token}`).toString('base64')}` };
      const pause = (headers: Record<string, string>) =>
        fetch(`${app.url}/admin/queues/api/queues/generation/pause`, { method: 'PUT', headers: { ...auth, ...headers } });
      const queue = app.segue.generationJobs.queue;

      // A page on another site, replaying the browser's cached Basic credentials.
      expect((await pause({ origin: 'https://evil.example' })).status).toBe(403);
      expect((await pause({ origin: 'null' })).status).toBe(403);
      expect((await pause({ 'sec-fetch-site': 'cross-site' })).status).toBe(403);
      const post = await fetch(`${app.url}/admin/queues/api/queues/generation/retry/failed`, {
        method: 'POST',
        headers: { ...auth, origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
        body: 'x=1',
      });
      expect(post.status).toBe(403);
      expect(await queue.isPaused()).toBe(false);

      // Reading the board from anywhere is still fine.
      expect((await fetch(`${app.url}/admin/queues`, { headers: { ...auth, origin: 'https://evil.example' } })).status).toBe(200);
      // The board itself (same origin), and a script without Origin.
      expect((await pause({ origin: new URL(app.url).origin, 'sec-fetch-site': 'same-origin' })).status).toBe(200);
      expect(await queue.isPaused()).toBe(true);
      expect((await fetch(`${app.url}/admin/queues/api/queues/generation/resume`, { method: 'PUT', headers: auth })).status).toBe(200);
      expect(await queue.isPaused()).toBe(false);
    } finally {
      await app.close();
    }
  });
});
