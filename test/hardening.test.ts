import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codes, createTestAccount, gql, startTestApp, type TestAccount, type TestApp } from './helpers/app.ts';
import { redisRateLimiter } from '../src/http/rate-limit.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions, Viewer } from './helpers/operations.ts';
import { wsClient } from './helpers/subscribe.ts';

let app: TestApp;
let account: TestAccount;
beforeAll(async () => {
  app = await startTestApp({
    RATE_LIMIT_MUTATIONS_PER_MINUTE: '3',
    CORS_ORIGINS: 'https://studio.example.com',
    GRAPHQL_MAX_DEPTH: '6',
    GRAPHQL_MAX_ALIASES: '5',
    MAX_BODY_BYTES: '65536',
  });
  account = await createTestAccount(app.segue);
});
afterAll(() => app.close());

const post = (body: string, headers: Record<string, string> = {}) =>
  fetch(app.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${account.apiKey}`, ...headers },
    body,
  });

describe('hardening', () => {
  it('limits mutations per account per minute with RATE_LIMITED and a retryAfter', async () => {
    const other = await createTestAccount(app.segue);
    for (let i = 0; i < 3; i++) {
      const ok = await gql(app.graphqlUrl, other.apiKey, CreateTransitions, { input: { transitions: transitionInputs(1) } });
      expect(ok.errors).toBeUndefined();
    }
    const limited = await gql(app.graphqlUrl, other.apiKey, CreateTransitions, { input: { transitions: transitionInputs(1) } });
    expect(codes(limited)).toEqual(['RATE_LIMITED']);
    // The window runs from the burst's first mutation, under a second ago, not to the end of
    // the wall-clock minute (which could be 1 s away, and let 3 more through at once).
    expect(limited.errors![0]!.extensions!.retryAfter).toBeGreaterThanOrEqual(58);
    expect(limited.errors![0]!.extensions!.retryAfter).toBeLessThanOrEqual(60);
    expect(await app.segue.db.transition.count({ where: { accountId: other.id } })).toBe(3);
    // Queries are not limited, and other accounts are not affected.
    expect((await gql(app.graphqlUrl, other.apiKey, Viewer)).errors).toBeUndefined();
    expect((await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: transitionInputs(1) } })).errors).toBeUndefined();
  });

  it('slides its window: a slot frees when the oldest mutation leaves it, whatever the clock minute', async () => {
    const limiter = redisRateLimiter(() => app.segue.generationJobs, app.segue.config.queuePrefix, 3, app.segue.logger, 2_000)!;
    const accountId = `slide-${Date.now()}`;
    expect(await limiter.take(accountId)).toBe(0);
    // The first entry is from before this moment: gone from the window 2 s after it.
    const first = Date.now();
    await sleep(1_000);
    expect(await limiter.take(accountId)).toBe(0);
    expect(await limiter.take(accountId)).toBe(0);
    // Refused until the first leaves the window; a refusal takes no slot.
    const wait = await limiter.take(accountId);
    expect(wait).toBe(1);
    expect(await limiter.take(accountId)).toBe(1);
    await sleep(first + 2_100 - Date.now());
    // One slot back (the first's), not the whole window: the two later ones still count.
    expect(await limiter.take(accountId)).toBe(0);
    expect(await limiter.take(accountId)).toBeGreaterThan(0);
  });

  it('refuses deep, alias-heavy and oversized requests', async () => {
    const deep = await post(JSON.stringify({ query: '{ viewer { id } transitions { edges { node { batch { transitions { edges { node { batch { id } } } } } } } } }' }));
    const deepBody = (await deep.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
    expect(deepBody.errors[0]!.extensions.code).toBe('BAD_USER_INPUT');
    expect(deepBody.errors[0]!.message).toMatch(/depth/i);

    const aliases = await post(JSON.stringify({ query: `{ ${Array.from({ length: 10 }, (_, i) => `a${i}: viewer { id }`).join(' ')} }` }));
    const aliasBody = (await aliases.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
    expect(aliasBody.errors[0]!.extensions.code).toBe('BAD_USER_INPUT');
    expect(aliasBody.errors[0]!.message).toMatch(/alias/i);

    const huge = await post(JSON.stringify({ query: '{ viewer { id } }', padding: 'x'.repeat(100_000) }));
    expect(huge.status).toBe(413);
  });

  it('over WebSocket, refuses an operation over a limit alone (BAD_USER_INPUT), and the connection goes on', async () => {
    let closedWith: number | null = null;
    const client = wsClient(app.graphqlUrl, account.apiKey, { onClose: (code) => (closedWith = code) });
    try {
      const run = (query: string) =>
        new Promise<{ data?: unknown; errors?: ReadonlyArray<{ message: string; extensions?: Record<string, unknown> }> }>((resolve, reject) => {
          let result: { data?: unknown; errors?: ReadonlyArray<{ message: string; extensions?: Record<string, unknown> }> } = {};
          client.subscribe({ query }, {
            next: (value) => (result = value as typeof result),
            // graphql-ws hands an operation's refusal (an `error` message) to `error` as its errors.
            error: (error) => (Array.isArray(error) ? resolve({ errors: error }) : reject(error)),
            complete: () => resolve(result),
          });
        });
      // graphql-armor's limits throw from validation: Yoga answers them over HTTP; over WebSocket
      // they closed the whole connection (4500) with every subscription on it.
      const aliases = await run(`subscription { transitionUpdated { ${Array.from({ length: 10 }, (_, i) => `a${i}: id`).join(' ')} } }`);
      expect(aliases.errors?.map((e) => e.extensions?.code)).toEqual(['BAD_USER_INPUT']);
      expect(aliases.errors?.[0]?.message).toMatch(/alias/i);
      const deep = await run('{ viewer { id } transitions { edges { node { batch { transitions { edges { node { batch { id } } } } } } } } }');
      expect(deep.errors?.map((e) => e.extensions?.code)).toEqual(['BAD_USER_INPUT']);
      expect(deep.errors?.[0]?.message).toMatch(/depth/i);
      const syntax = await run('{ viewer { id ');
      expect(syntax.errors?.map((e) => e.extensions?.code)).toEqual(['BAD_USER_INPUT']);
      // The connection still serves: no refusal closed it (graphql-ws' lazy client may close it
      // with 1000 once nothing runs on it; it closed with 4500 at the first refusal).
      expect(await run('{ viewer { id } }')).toEqual({ data: { viewer: { id: expect.any(String) } } });
      expect(closedWith === null || closedWith === 1000, String(closedWith)).toBe(true);
      // Yoga's caches share error objects between requests of the same text, and its HTTP
      // handling marks them with a status (its `http` extension), which is never sent.
      for (const query of ['{ nope }', '{ viewer { id ', 'mutation { deleteTransitions(input: { ids: [] }) { deletedIds } }']) {
        await fetch(`${app.graphqlUrl}?query=${encodeURIComponent(query)}`, { headers: { accept: 'application/json' } });
        await post(JSON.stringify({ query }));
      }
      for (const query of ['{ nope }', '{ viewer { id ']) {
        const refused = await run(query);
        expect(refused.errors?.map((e) => e.extensions), query).toEqual([{ code: 'BAD_USER_INPUT' }]);
      }
    } finally {
      await client.dispose();
    }
  });

  it('answers CORS preflights for the configured origins only', async () => {
    const allowed = await fetch(app.graphqlUrl, {
      method: 'OPTIONS',
      headers: { origin: 'https://studio.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://studio.example.com');
    const denied = await fetch(app.graphqlUrl, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(denied.headers.get('access-control-allow-origin')).not.toBe('https://evil.example');
  });
});
