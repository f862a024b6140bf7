import { getEventListeners, once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createFalClient } from '@fal-ai/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.ts';
import { createFalProvider } from '../src/providers/fal.ts';
import { ProviderError } from '../src/providers/provider.ts';
import { startFalEmulator, type FalEmulator } from '../tools/fal-emulator/index.ts';
import { testConfig } from './helpers/app.ts';
import { until } from './helpers/wait.ts';

/**
 * A status poll and a result read, as the worker sends them (node:http, not the client's fetch):
 * what fal answers, and how each failure reaches the tracker, against the emulator through the
 * proxy path.
 */
const MODEL = 'fal-ai/kling-video/v2.1/pro/image-to-video';
const quietLog = createLogger({ log: { level: 'silent', pretty: false } } as never);
let emulator: FalEmulator;

beforeAll(async () => {
  emulator = await startFalEmulator({ latencyMs: 1500, apiKey: 'test-key' });
});
afterAll(() => emulator?.close());

const providerFor = (env: Record<string, string> = {}) =>
  createFalProvider(testConfig({ FAL_KEY: 'test-key', FAL_PROXY_URL: emulator.url, FAL_CALL_TIMEOUT_MS: '400', ...env }), quietLog);

async function submitted(model = MODEL) {
  const fal = createFalClient({ credentials: 'test-key', proxyUrl: { url: emulator.url, when: 'always' }, suppressLocalCredentialsWarning: true });
  const { request_id: requestId } = await fal.queue.submit(model, {
    input: { prompt: `fal read ${Math.random()}`, image_url: 'https://example.com/a.png', tail_image_url: 'https://example.com/b.png' },
  });
  return requestId;
}

const fromEmulator = {
  /** Resolves once the emulator has ended the request (its latency is 1.5 s). */
  completed: (requestId: string) =>
    until(() => emulator.requests().find((r) => r.requestId === requestId && r.status === 'COMPLETED'), {
      timeoutMs: 5_000,
      intervalMs: 50,
      what: `request ${requestId} to end`,
    }),
};

const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error as ProviderError,
  );

/** `read` after fal closed the kept-alive connection it reuses: its answer, sent twice, once reset. */
async function afterReusedReset<T>(on: 'status' | 'result', read: () => Promise<T>): Promise<T> {
  await read();
  const before = emulator.counters();
  emulator.inject({ on, resetReused: true, times: 1 });
  const answer = await read();
  const after = emulator.counters();
  const calls = on === 'status' ? 'statusCalls' : 'resultCalls';
  expect(after.connectionsReset - before.connectionsReset).toBe(1);
  expect(after[calls] - before[calls]).toBe(2);
  return answer;
}

/** `read` fails with FAL_NETWORK once FAL_CALL_TIMEOUT_MS (400 ms here) has passed, and not long after. */
async function givesUpInTime(read: () => Promise<unknown>) {
  const started = Date.now();
  const error = await failure(read());
  expect(error).toMatchObject({ code: 'FAL_NETWORK', options: { retryable: true } });
  expect(error.message).toMatch(/in time/);
  expect(Date.now() - started).toBeGreaterThanOrEqual(350);
  expect(Date.now() - started).toBeLessThan(3_000);
}

describe('a status poll', () => {
  it('reads IN_PROGRESS and then COMPLETED, one call to fal each', async () => {
    const provider = providerFor();
    const requestId = await submitted();
    const before = emulator.counters().statusCalls;
    expect(await provider.status(requestId)).toEqual({ state: 'IN_PROGRESS' });
    await fromEmulator.completed(requestId);
    expect(await provider.status(requestId)).toEqual({ state: 'COMPLETED' });
    expect(emulator.counters().statusCalls - before).toBe(2);
  });

  it('answers a 500 with a retryable FAL_UNAVAILABLE after one call: the tracker asks again at its next poll', async () => {
    const provider = providerFor();
    const requestId = await submitted();
    emulator.inject({ on: 'status', status: 500, times: 1 });
    const before = emulator.counters().statusCalls;
    const error = await failure(provider.status(requestId));
    expect(error).toBeInstanceOf(ProviderError);
    expect(error).toMatchObject({ code: 'FAL_UNAVAILABLE', requestOver: false, options: { retryable: true, status: 500 } });
    expect(emulator.counters().statusCalls - before).toBe(1);
    expect(await provider.status(requestId)).toMatchObject({ state: expect.stringMatching(/IN_PROGRESS|COMPLETED/) });
  });

  it('says FAL_REQUEST_LOST only when fal does not know the request twice', async () => {
    const provider = providerFor();
    const error = await failure(provider.status('no-such-request'));
    expect(error).toMatchObject({ code: 'FAL_REQUEST_LOST', requestOver: true, options: { status: 404 } });
    const requestId = await submitted();
    // One 404 on a known request is a passing fault: not the request's end.
    emulator.inject({ on: 'status', status: 404, times: 1 });
    expect(await provider.status(requestId)).toMatchObject({ state: expect.stringMatching(/IN_PROGRESS|COMPLETED/) });
  });

  it('names fal’s refusal of a wrong key (every other test here sends the right one to an emulator that checks it)', async () => {
    const requestId = await submitted();
    expect(await failure(providerFor({ FAL_KEY: 'wrong-key' }).status(requestId))).toMatchObject({
      code: 'FAL_UNAUTHORIZED',
      options: { retryable: false, status: 401 },
    });
  });

  it('asks an app with a one-part id (owner-alias) where the client submitted it', async () => {
    const requestId = await submitted('110602490-lcm');
    expect(await providerFor({ FAL_MODEL: '110602490-lcm' }).status(requestId)).toMatchObject({ state: expect.stringMatching(/IN_PROGRESS|COMPLETED/) });
  });

  it('carries a 429’s Retry-After in the error the tracker waits on before its next poll', async () => {
    const requestId = await submitted();
    emulator.inject({ on: 'status', status: 429, retryAfterSec: 7, times: 1 });
    expect(await failure(providerFor().status(requestId))).toMatchObject({
      code: 'FAL_RATE_LIMITED',
      options: { retryable: true, status: 429, retryAfterMs: 7_000 },
    });
  });

  it('sends a poll again, once, on a new connection when fal closed the kept-alive one as it was reused', async () => {
    const provider = providerFor();
    const requestId = await submitted();
    expect(await afterReusedReset('status', () => provider.status(requestId))).toMatchObject({ state: expect.stringMatching(/IN_PROGRESS|COMPLETED/) });
  });

  it.each([
    ['an answer that stops halfway', { on: 'status', stallBody: true, times: 1 }],
    ['a call fal leaves unanswered', { on: 'status', hang: true, times: 1 }],
  ] as const)('gives up on %s after FAL_CALL_TIMEOUT_MS, with FAL_NETWORK', async (_what, fault) => {
    const requestId = await submitted();
    emulator.inject(fault);
    await givesUpInTime(() => providerFor().status(requestId));
  });

  it('stops at once when its job stops, and leaves nothing on the job’s signal', async () => {
    const provider = providerFor({ FAL_CALL_TIMEOUT_MS: '10000' });
    const requestId = await submitted();
    const job = new AbortController();
    for (let i = 0; i < 5; i++) await provider.status(requestId, { signal: job.signal });
    expect(getEventListeners(job.signal, 'abort')).toHaveLength(0);
    emulator.inject({ on: 'status', hang: true, times: 1 });
    const started = Date.now();
    const pending = failure(provider.status(requestId, { signal: job.signal }));
    setTimeout(() => job.abort(new Error('job stopping')), 100);
    expect((await pending).message).toMatch(/job stopping/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

describe('a result read', () => {
  /** A request fal has finished (the emulator's latency is 1.5 s). */
  async function finished(model = MODEL) {
    const requestId = await submitted(model);
    await fromEmulator.completed(requestId);
    return requestId;
  }

  it('reads the video fal made, with one call to fal', async () => {
    const requestId = await finished();
    const before = emulator.counters().resultCalls;
    const result = await providerFor().result(requestId);
    expect(result.videoUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/.+\.mp4$/);
    expect(result.raw).toMatchObject({ video: { url: result.videoUrl } });
    expect(emulator.counters().resultCalls - before).toBe(1);
  });

  it('answers a read before fal has finished (400 “still in progress”, with the request’s id) as the call’s failure, not the request’s', async () => {
    const requestId = await submitted();
    expect(await failure(providerFor().result(requestId))).toMatchObject({ code: 'FAL_UNAVAILABLE', requestOver: false, options: { status: 400 } });
  });

  it.each([500, 502, 503, 504])('answers a %i with a retryable FAL_UNAVAILABLE after one call: the result loop reads again on its own clock', async (status) => {
    const requestId = await finished();
    emulator.inject({ on: 'result', status, times: 1 });
    const before = emulator.counters().resultCalls;
    const error = await failure(providerFor({ FAL_CALL_TIMEOUT_MS: '5000' }).result(requestId));
    expect(error).toMatchObject({ code: 'FAL_UNAVAILABLE', requestOver: false, options: { retryable: true, status } });
    expect(emulator.counters().resultCalls - before).toBe(1);
  });

  it('carries a 429’s Retry-After in the error the result loop waits on', async () => {
    const requestId = await finished();
    emulator.inject({ on: 'result', status: 429, retryAfterSec: 7, times: 1 });
    expect(await failure(providerFor({ FAL_CALL_TIMEOUT_MS: '5000' }).result(requestId))).toMatchObject({
      code: 'FAL_RATE_LIMITED',
      options: { retryable: true, status: 429, retryAfterMs: 7_000 },
    });
  });

  it('says FAL_REQUEST_LOST only when fal does not know the request twice', async () => {
    const provider = providerFor();
    expect(await failure(provider.result('no-such-request'))).toMatchObject({ code: 'FAL_REQUEST_LOST', requestOver: true, options: { status: 404 } });
    const requestId = await finished();
    emulator.inject({ on: 'result', status: 404, times: 1 });
    expect((await provider.result(requestId)).videoUrl).toMatch(/\.mp4$/);
  });

  it('stops at once when its job stops while it waits to read a “not known” answer again', async () => {
    const job = new AbortController();
    const before = emulator.counters().resultCalls;
    const pending = failure(providerFor({ FAL_CALL_TIMEOUT_MS: '5000' }).result('no-such-request', { signal: job.signal }));
    // The second read is due 250 ms after the first one's 404.
    await until(() => emulator.counters().resultCalls > before, { intervalMs: 5, what: 'the first read' });
    const answered = Date.now();
    setTimeout(() => job.abort(new Error('job stopping')), 20);
    expect((await pending).message).toMatch(/job stopping/);
    // Stopped at once: the only read is the first (the second was due 250 ms after it).
    expect(Date.now() - answered).toBeLessThan(1_000);
    expect(emulator.counters().resultCalls - before).toBe(1);
  });

  it('takes a 4xx carrying the request’s id as fal’s word that the job failed only when a second read says it too', async () => {
    const provider = providerFor();
    const requestId = await finished();
    emulator.inject({ on: 'result', status: 409, withRequestId: true, times: 2 });
    let before = emulator.counters().resultCalls;
    expect(await failure(provider.result(requestId))).toMatchObject({ code: 'FAL_JOB_ERROR', requestOver: true, options: { status: 409 } });
    expect(emulator.counters().resultCalls - before).toBe(2);
    // Said once, it is a passing fault: the second read brings the video.
    emulator.inject({ on: 'result', status: 409, withRequestId: true, times: 1 });
    before = emulator.counters().resultCalls;
    expect((await provider.result(requestId)).videoUrl).toMatch(/\.mp4$/);
    expect(emulator.counters().resultCalls - before).toBe(2);
  });

  it('takes a 5xx as the job’s failure only with the request’s id and when fal’s status said it failed', async () => {
    const requestId = await finished();
    emulator.inject({ on: 'result', status: 500, withRequestId: true, times: 2 });
    expect(await failure(providerFor().result(requestId, { failed: true }))).toMatchObject({ code: 'FAL_JOB_ERROR', requestOver: true, options: { status: 500 } });
    emulator.inject({ on: 'result', status: 500, times: 1 });
    expect(await failure(providerFor().result(requestId, { failed: true }))).toMatchObject({ code: 'FAL_UNAVAILABLE', requestOver: false });
  });

  it('names fal’s refusal of the input (a 422 at result time) FAL_VALIDATION, not retried', async () => {
    const prompt = `refused ${Math.random()}`;
    emulator.inject({ on: 'job', error: 'validation', promptIncludes: prompt });
    const fal = createFalClient({ credentials: 'test-key', proxyUrl: { url: emulator.url, when: 'always' }, suppressLocalCredentialsWarning: true });
    const { request_id: requestId } = await fal.queue.submit(MODEL, {
      input: { prompt, image_url: 'https://example.com/a.png', tail_image_url: 'https://example.com/b.png' },
    });
    await fromEmulator.completed(requestId);
    expect(await failure(providerFor().result(requestId, { failed: true }))).toMatchObject({
      code: 'FAL_VALIDATION',
      requestOver: true,
      options: { retryable: false, status: 422 },
    });
  });

  it('answers an output without a video as a retryable FAL_BAD_OUTPUT', async () => {
    const requestId = await finished();
    emulator.inject({ on: 'result', malformed: true, times: 1 });
    expect(await failure(providerFor().result(requestId))).toMatchObject({ code: 'FAL_BAD_OUTPUT', options: { retryable: true } });
  });

  it('sends a read again, once, when fal closed the kept-alive connection as it was reused', async () => {
    const provider = providerFor();
    const requestId = await finished();
    expect((await afterReusedReset('result', () => provider.result(requestId))).videoUrl).toMatch(/\.mp4$/);
  });

  it.each([
    ['an answer that stops halfway', { on: 'result', stallBody: true, times: 1 }],
    ['a read fal leaves unanswered', { on: 'result', hang: true, times: 1 }],
  ] as const)('gives up on %s after FAL_CALL_TIMEOUT_MS, with FAL_NETWORK', async (_what, fault) => {
    const requestId = await finished();
    emulator.inject(fault);
    await givesUpInTime(() => providerFor().result(requestId));
  });
});

/**
 * Answers fal's queue does not give, from a server standing where the proxy would: each fails
 * the call only (read again later), never the request.
 */
describe('a read of an answer fal does not give', () => {
  let server: Server;
  let url: string;
  const answers: Record<string, (res: ServerResponse) => void> = {
    redirect: (res) => res.writeHead(302, { location: 'https://example.com/elsewhere', 'x-fal-request-id': 'redirect' }).end(),
    'bad-json': (res) => res.writeHead(400, { 'content-type': 'application/json', 'x-fal-request-id': 'bad-json' }).end('{"detail": "cut'),
    huge: (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ video: { url: 'https://example.com/v.mp4' }, padding: 'x'.repeat(5 << 20) }));
    },
  };

  beforeAll(async () => {
    server = createServer((req, res) => {
      // The proxy path names fal's URL in x-fal-target-url; the request id is its last part.
      const target = String(req.headers['x-fal-target-url'] ?? '');
      answers[target.split('/').pop()!]!(res);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((r) => server?.close(r)));

  // Time enough to build and read 4 MB on a busy machine.
  const provider = () => providerFor({ FAL_PROXY_URL: url, FAL_CALL_TIMEOUT_MS: '5000' });

  it('fails the call on a redirect (the queue sends none) rather than taking it as the job’s answer', async () => {
    const error = await failure(provider().result('redirect'));
    expect(error).toMatchObject({ code: 'FAL_UNAVAILABLE', requestOver: false, options: { retryable: true, status: 302 } });
    expect(error.message).toMatch(/redirect/);
  });

  it('fails the call on a JSON body that does not parse, even a 4xx carrying the request’s id', async () => {
    const error = await failure(provider().result('bad-json'));
    expect(error).toMatchObject({ code: 'FAL_UNAVAILABLE', requestOver: false, options: { retryable: true, status: 400 } });
    expect(error.message).toMatch(/does not parse/);
  });

  it('stops reading an answer past 4 MB, as FAL_BAD_OUTPUT', async () => {
    const error = await failure(provider().result('huge'));
    expect(error).toMatchObject({ code: 'FAL_BAD_OUTPUT', requestOver: false, options: { retryable: true } });
    expect(error.message).toMatch(/over 4 MB/);
  });
});
