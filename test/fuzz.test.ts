import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capturedLogs } from './helpers/log-lines.ts';
import { createTestAccount, startTestApp, type TestAccount, type TestApp } from './helpers/app.ts';

/** A small seeded PRNG (mulberry32): the same 1,500 requests on every run. */
function random(seed: number) {
  let a = seed;
  const next = () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(items: readonly T[]) => items[Math.floor(next() * items.length)]!,
  };
}

const { lines: logLines, logger } = capturedLogs('warn');

let app: TestApp;
let account: TestAccount;
beforeAll(async () => {
  app = await startTestApp({ RATE_LIMIT_MUTATIONS_PER_MINUTE: '0' }, { logger });
  account = await createTestAccount(app.segue);
});
afterAll(() => app.close());

const TRANSITION_ID = 'VHJhbnNpdGlvbjowMWEyMTQ4Yy0xOGM0LTc0NTItOTRmMi0wNGRlY2Q2ODI4MDc';

describe('fuzz: hostile and malformed GraphQL requests', () => {
  it('1,500 of them: never a 5xx, never an unexpected error logged, never a row written', { timeout: 120_000 }, async () => {
    const r = random(20261125);
    const rowsBefore = await app.segue.db.transition.count();
    const batchesBefore = await app.segue.db.batch.count();
    const junkValue = (depth = 0): unknown =>
      r.pick<() => unknown>([
        () => r.int(1e9) - 5e8,
        () => r.next(),
        () => null,
        () => true,
        () => 'x'.repeat(r.int(5000)),
        () => String.fromCharCode(...Array.from({ length: 20 }, () => r.int(0xffff))),
        () => (depth < 3 ? Array.from({ length: r.int(4) }, () => junkValue(depth + 1)) : []),
        () => (depth < 3 ? { [r.pick(['a', 'prompt', '__proto__', 'constructor', 'transitions'])]: junkValue(depth + 1) } : {}),
        () => 'javascript:alert(1)',
        () => 'http://169.254.169.254/latest/meta-data',
      ])();
    const badTransition = () => {
      const t: Record<string, unknown> = {
        frontImageUrl: r.pick(['ftp://a/b.png', 'not a url', '', 'http://', junkValue()]),
        tailImageUrl: r.pick(['https://a.example/t.png', junkValue()]),
        prompt: r.pick(['', ' ', 'x'.repeat(2501), junkValue()]),
        durationSeconds: r.pick([0, 7, -5, 5.5, '5', 1e12, junkValue()]),
      };
      if (r.next() < 0.3) delete t[r.pick(Object.keys(t))];
      if (r.next() < 0.2) t[r.pick(['colour', 'status', 'accountId', 'id'])] = junkValue();
      return t;
    };
    const generators: Array<() => { method?: string; body?: string | Buffer; headers?: Record<string, string>; path?: string }> = [
      // Not JSON at all, or broken JSON.
      () => ({ body: r.pick(['{', '{"query":', 'null', '[]', '"string"', '{"query": 5}', '\u0000\u0001', '{"query":"{"}']) }),
      () => ({ body: Buffer.from(Array.from({ length: r.int(2000) }, () => r.int(256))) }),
      // GraphQL syntax errors and unknown fields.
      () => ({ body: JSON.stringify({ query: r.pick(['{', '{ viewer { ', 'query {{}}', '{ nope }', '{ viewer { nope } }', 'mutation { createTransitions }', '{ transition(id: 1) { id } }', 'subscription { nope }']) }) }),
      // Wrong types and hostile values in variables.
      () => ({
        body: JSON.stringify({
          query: 'mutation($input: CreateTransitionsInput!) { createTransitions(input: $input) { transitions { id } } }',
          variables: { input: r.next() < 0.2 ? junkValue() : { transitions: Array.from({ length: 1 + r.int(3) }, badTransition), generate: r.pick([true, false, 'yes', 1]) } },
        }),
      }),
      () => ({
        body: JSON.stringify({
          query: 'mutation($input: GenerateBatchInput!) { generateBatch(input: $input) { batch { id } } }',
          variables: { input: { transitionIds: r.pick([[], [TRANSITION_ID], ['garbage'], [junkValue()], Array(101).fill(TRANSITION_ID)]), idempotencyKey: junkValue() } },
        }),
      }),
      () => ({ body: JSON.stringify({ query: `{ transition(id: ${JSON.stringify(String(junkValue()))}) { id } node(id: "${TRANSITION_ID}") { id } }` }) }),
      () => ({ body: JSON.stringify({ query: `mutation { cancelTransition(id: "${r.pick([TRANSITION_ID, 'x', ''])}") { id } retryTransition(id: "QmF0Y2g6MDFh") { id } }` }) }),
      // Deep nesting, many aliases, many tokens.
      () => ({ body: JSON.stringify({ query: `{ ${'transitions { edges { node { batch { '.repeat(10 + r.int(20))}id${' } } } }'.repeat(10 + r.int(20))} }` }) }),
      () => ({ body: JSON.stringify({ query: `{ ${Array.from({ length: 50 + r.int(500) }, (_, i) => `a${i}: viewer { id }`).join(' ')} }` }) }),
      () => ({ body: JSON.stringify({ query: `{ viewer { ${'id '.repeat(5000)} } }` }) }),
      // Huge lists and bodies.
      () => ({
        body: JSON.stringify({
          query: 'mutation($input: CreateTransitionsInput!) { createTransitions(input: $input) { transitions { id } } }',
          variables: { input: { transitions: Array.from({ length: 101 + r.int(400) }, () => ({ frontImageUrl: 'https://a.example/f.png', tailImageUrl: 'https://a.example/t.png', prompt: 'p' })) } },
        }),
      }),
      () => ({ body: JSON.stringify({ query: '{ viewer { id } }', pad: 'x'.repeat(10 * 1024 * 1024) }) }),
      // Odd methods, headers and auth.
      () => ({ method: r.pick(['PUT', 'DELETE', 'PATCH']), body: JSON.stringify({ query: '{ viewer { id } }' }) }),
      () => ({ method: 'GET', path: `/graphql?query=${encodeURIComponent(r.pick(['mutation { createTransitions(input: {transitions: []}) { batch { id } } }', '{', '{ viewer { id } }']))}` }),
      () => ({ method: 'GET', path: `/graphql?query=${encodeURIComponent('{ viewer { id } }')}&${r.pick(['variables', 'extensions'])}=${encodeURIComponent(r.pick(['{', '{"a":', 'x', '[1,']))}` }),
      () => ({ headers: { authorization: r.pick(['Bearer', 'Bearer sg_' + 'A'.repeat(500), 'Basic xyz', 'Bearer ' + '\u00ff'.repeat(10)]) }, body: JSON.stringify({ query: 'mutation { createTransitions(input: {transitions: [{frontImageUrl: "https://a/b.png", tailImageUrl: "https://a/c.png", prompt: "p"}]}) { batch { id } } }' }) }),
      () => ({ headers: { 'content-type': r.pick(['text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/graphql']) }, body: '{ viewer { id } }' }),
      () => ({ body: JSON.stringify([{ query: '{ viewer { id } }' }, { query: '{ viewer { name } }' }]) }),
      () => ({ body: JSON.stringify({ query: '{ viewer { id } }', operationName: junkValue(), extensions: junkValue() }) }),
    ];

    const statuses = new Map<number, number>();
    const runOne = async (i: number) => {
      const request = r.pick(generators)();
      const authorized = !request.headers?.authorization && i % 7 !== 0;
      let status: number;
      try {
        const response = await fetch(`${app.url}${request.path ?? '/graphql'}`, {
          method: request.method ?? 'POST',
          headers: {
            'content-type': 'application/json',
            accept: r.pick(['application/json', 'application/graphql-response+json', 'text/event-stream', '*/*']),
            ...(authorized ? { authorization: `Bearer ${account.apiKey}` } : {}),
            ...request.headers,
          },
          ...(request.method === 'GET' ? {} : { body: typeof request.body === 'string' ? request.body : request.body ? new Uint8Array(request.body) : null }),
        });
        status = response.status;
        await response.arrayBuffer().catch(() => undefined);
      } catch (error) {
        // Only a body over the size limit may be cut off: the server answers 413 and closes
        // without reading the rest. Any other broken connection is a failure.
        if ((request.body?.length ?? 0) <= 1024 * 1024) throw error;
        status = 0;
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      expect(status, `request ${i}`).toBeLessThan(500);
    };
    const total = 1500;
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < total) await runOne(next++);
      }),
    );
    expect([...statuses.values()].reduce((a, b) => a + b, 0)).toBe(total);
    expect(await app.segue.db.transition.count()).toBe(rowsBefore);
    expect(await app.segue.db.batch.count()).toBe(batchesBefore);
    const unexpected = logLines.filter((l) => l.level >= 50);
    expect(unexpected, JSON.stringify(unexpected.slice(0, 3))).toEqual([]);
  });
});
