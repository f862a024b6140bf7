import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Authentication } from '../src/auth/principal.ts';
import { createTransitions } from '../src/domain/transitions.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { capturedLogs } from './helpers/log-lines.ts';
import { createTestAccount, startTestApp, withoutJobs, type TestAccount, type TestApp } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';

/**
 * The API's real authenticator, watched: every check is counted, and a test can hold the next
 * one until it lets it go (with its real answer, or a failure).
 */
const checks = vi.hoisted(() => ({
  count: 0,
  hold: null as null | { reached: () => void; release: Promise<'answer' | 'fail'> },
}));
vi.mock('../src/auth/authenticate.ts', async (importOriginal) => {
  const original = await importOriginal<typeof import('../src/auth/authenticate.ts')>();
  return {
    ...original,
    createAuthenticator: (deps: Parameters<typeof original.createAuthenticator>[0]) => {
      const real = original.createAuthenticator(deps);
      return {
        ...real,
        authenticate: async (credential: string | null | undefined): Promise<Authentication> => {
          checks.count++;
          const hold = checks.hold;
          if (hold) {
            checks.hold = null;
            hold.reached();
            if ((await hold.release) === 'fail') throw new Error('the database timed out');
          }
          return real.authenticate(credential);
        },
      };
    },
  };
});

const { lines: logLines, logger } = capturedLogs('debug');

let app: TestApp;
let account: TestAccount;
beforeAll(async () => {
  app = await startTestApp({}, { logger });
  account = await createTestAccount(app.segue);
});
afterAll(() => app?.close());

const QUERY = 'subscription Progress($id: ID!) { batchProgress(id: $id) { id total } }';
const MISSING_BATCH = encodeId('Batch', '00000000-0000-7000-8000-000000000000');

const sse = (params: Record<string, unknown>, apiKey: string | null = account.apiKey) =>
  fetch(app.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...(apiKey && { authorization: `Bearer ${apiKey}` }) },
    body: JSON.stringify(params),
    signal: AbortSignal.timeout(10_000),
  });

const gauge = async (metric: { get(): Promise<{ values: Array<{ value: number }> }> }) => (await metric.get()).values[0]?.value ?? 0;

describe('SSE requests left to Yoga', () => {
  it('are checked once: a query, a missing or refused key, and a refused subscription (its resolvers run once, its error logged once)', async () => {
    const cases: Array<[string, Record<string, unknown>, string | null, RegExp]> = [
      ['a query', { query: '{ viewer { id } }' }, account.apiKey, /"data":\{"viewer"/],
      ['no key', { query: QUERY, variables: { id: MISSING_BATCH } }, null, /UNAUTHENTICATED/],
      ['a key that does not exist', { query: QUERY, variables: { id: MISSING_BATCH } }, 'sg_nope', /UNAUTHENTICATED/],
      ['a batch not found', { query: QUERY, variables: { id: MISSING_BATCH } }, account.apiKey, /NOT_FOUND/],
    ];
    for (const [what, params, key, answer] of cases) {
      const before = checks.count;
      const logged = logLines.length;
      const response = await sse(params, key);
      expect(await response.text(), what).toMatch(answer);
      expect(checks.count - before, what).toBe(1);
      if (what === 'a batch not found') {
        // The resolver's refusal, masked and logged where it was met: once.
        const refusals = logLines.slice(logged).filter((l) => l.msg === 'request error' && /not found/i.test(l.err?.message ?? ''));
        expect(refusals, JSON.stringify(logLines.slice(logged))).toHaveLength(1);
      }
    }
    // A document that does not validate is refused before any key is looked at, by Yoga as here.
    const before = checks.count;
    expect(await (await sse({ query: 'subscription { nope }' })).text()).toMatch(/BAD_USER_INPUT/);
    expect(checks.count - before).toBe(0);
  });

  it('a stream that cannot be written leaves neither its subscription nor its credential watch behind', async () => {
    const { batch } = await createTransitions(withoutJobs(app.segue), account.id, { generate: true, transitions: transitionInputs(2) });
    const open = await gauge(app.segue.metrics.subscriptions);
    const watches = await gauge(app.segue.metrics.credentialWatches);
    // A response whose stream's head cannot be written (as an invalid header would make it); the
    // failure's own answer can.
    const breakHead = (_req: unknown, res: { writeHead: (...args: unknown[]) => unknown }) => {
      const writeHead = res.writeHead;
      res.writeHead = () => {
        res.writeHead = writeHead;
        throw new Error('the head could not be written');
      };
    };
    app.server.prependListener('request', breakHead);
    try {
      const response = await sse({ query: QUERY, variables: { id: encodeId('Batch', batch!.id) } });
      expect(response.status).toBe(500);
    } finally {
      app.server.off('request', breakHead);
    }
    await expect.poll(() => gauge(app.segue.metrics.subscriptions)).toBe(open);
    await expect.poll(() => gauge(app.segue.metrics.credentialWatches)).toBe(watches);
  });

  it('set nothing up for a client that left while its key was checked, whether the check then fails or not', async () => {
    const { batch } = await createTransitions(withoutJobs(app.segue), account.id, { generate: true, transitions: transitionInputs(2) });
    const body = JSON.stringify({ query: QUERY, variables: { id: encodeId('Batch', batch!.id) } });
    for (const outcome of ['fail', 'answer'] as const) {
      const open = await gauge(app.segue.metrics.subscriptions);
      const watches = await gauge(app.segue.metrics.credentialWatches);
      let letGo!: (outcome: 'answer' | 'fail') => void;
      const reached = new Promise<void>((resolve) => {
        checks.hold = { reached: resolve, release: new Promise((r) => (letGo = r)) };
      });
      const req = request(app.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${account.apiKey}`, 'content-length': String(Buffer.byteLength(body)) },
      });
      req.on('error', () => undefined);
      req.end(body);
      await reached;
      req.destroy();
      // The server has seen the client go before the check answers.
      await sleep(200);
      letGo(outcome);
      await sleep(1_000);
      expect(await gauge(app.segue.metrics.subscriptions), outcome).toBe(open);
      expect(await gauge(app.segue.metrics.credentialWatches), outcome).toBe(watches);
    }
  });
});
