import { getEventListeners, once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStatusStream } from '../src/providers/fal-status-stream.ts';
import type { RequestState } from '../src/providers/provider.ts';
import { testConfig } from './helpers/app.ts';

/**
 * One status stream read from a server standing where fal's proxy would, answering as fal does
 * (test/status-streams.test.ts follows whole runs through the emulator) and as it does not: what
 * each ending of the stream resolves or rejects with, and what it leaves behind.
 */
const event = (body: object) => `data: ${JSON.stringify(body)}\n\n`;
const QUEUED = event({ status: 'IN_QUEUE', queue_position: 2 });
const RUNNING = event({ status: 'IN_PROGRESS' });
const COMPLETED = event({ status: 'COMPLETED' });
const stream = (res: ServerResponse) => res.writeHead(200, { 'content-type': 'text/event-stream' });

const answers: Record<string, (res: ServerResponse) => void> = {
  // Several events in one chunk, a comment, a body that is not JSON, a status fal does not
  // document, and statuses after COMPLETED; then fal closes.
  'all-in-one': (res) => {
    stream(res);
    res.write(QUEUED + ': keep-alive\n\n' + RUNNING + 'data: {cut\n\n' + event({ status: 'WEIRD' }) + COMPLETED + QUEUED + RUNNING);
    setTimeout(() => res.end(), 50);
  },
  'never-closes': (res) => {
    stream(res);
    res.write(RUNNING + COMPLETED);
  },
  'closes-late': (res) => {
    stream(res);
    res.write(COMPLETED);
    setTimeout(() => res.end(), 300);
  },
  silent: (res) => {
    stream(res);
    res.write(QUEUED);
  },
  'no-answer': () => undefined,
  'not-a-stream': (res) => res.writeHead(404, { 'content-type': 'application/json' }).end('{"detail":"Request not found"}'),
  'two-then-end': (res) => {
    stream(res);
    res.write(QUEUED);
    setTimeout(() => res.end(COMPLETED), 50);
  },
};

let server: Server;
let proxyUrl: string;
let connections = 0;
beforeAll(async () => {
  server = createServer((req, res) => {
    // The proxy path names fal's URL in x-fal-target-url: .../requests/<id>/status/stream.
    const target = String(req.headers['x-fal-target-url'] ?? '');
    answers[target.split('/requests/')[1]!.split('/')[0]!]!(res);
  });
  server.on('connection', () => connections++);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  proxyUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server?.closeAllConnections();
  return new Promise((r) => server?.close(r));
});

/** Reads one stream: its statuses, how it ended (`error` when it rejected) and how long it took. */
async function read(id: string, options: { idleMs?: number; openMs?: number; signal?: AbortSignal } = {}, onState?: (state: RequestState) => void) {
  const fal = testConfig({ FAL_PROXY_URL: proxyUrl }).fal;
  const states: RequestState[] = [];
  const started = performance.now();
  let error: unknown;
  try {
    await readStatusStream(fal, id, { idleMs: options.idleMs ?? 5_000, ...options }, (state) => {
      states.push(state);
      onState?.(state);
    });
  } catch (failure) {
    error = failure;
  }
  return { states, error, ms: performance.now() - started };
}

describe("reading fal's status stream", () => {
  it('passes on each status as fal sends it, several in one chunk, and nothing after COMPLETED; read to its end, its connection serves the next stream', async () => {
    const before = connections;
    const first = await read('all-in-one');
    expect(first.error).toBeUndefined();
    expect(first.states).toEqual([{ state: 'IN_QUEUE', queuePosition: 2 }, { state: 'IN_PROGRESS' }, { state: 'COMPLETED' }]);
    const second = await read('two-then-end');
    expect(second.states).toEqual([{ state: 'IN_QUEUE', queuePosition: 2 }, { state: 'COMPLETED' }]);
    expect(connections - before).toBe(1);
  });

  it('a stream fal does not close after COMPLETED is cut after about a second, and that is no failure', async () => {
    const { states, error, ms } = await read('never-closes');
    expect(error).toBeUndefined();
    expect(states).toEqual([{ state: 'IN_PROGRESS' }, { state: 'COMPLETED' }]);
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(3_000);
  });

  it('fails as FAL_NETWORK, retryable, when fal goes silent, does not answer, or answers anything but a stream', async () => {
    const silent = await read('silent', { idleMs: 300 });
    expect(silent.states).toEqual([{ state: 'IN_QUEUE', queuePosition: 2 }]);
    expect(silent.error).toMatchObject({ code: 'FAL_NETWORK', message: expect.stringMatching(/no byte from fal's status stream for 300 ms/), options: { retryable: true } });
    const unanswered = await read('no-answer', { idleMs: 5_000, openMs: 200 });
    expect(unanswered.error).toMatchObject({ code: 'FAL_NETWORK', message: expect.stringMatching(/did not answer within 200 ms/) });
    expect(unanswered.ms).toBeLessThan(2_000);
    const refused = await read('not-a-stream');
    expect(refused.error).toMatchObject({ code: 'FAL_NETWORK', message: expect.stringMatching(/answered 404 application\/json/), options: { status: 404 } });
  });

  it("the caller stopping cuts the stream, until COMPLETED came: then it is read to its end; nothing stays on the caller's signal", async () => {
    const stopping = new AbortController();
    const cut = await read('silent', { signal: stopping.signal }, () => stopping.abort(new Error('the job stopped')));
    expect(cut.error).toMatchObject({ code: 'FAL_NETWORK', message: expect.stringMatching(/the job stopped/) });
    expect(getEventListeners(stopping.signal, 'abort')).toHaveLength(0);

    const done = new AbortController();
    const finished = await read('closes-late', { signal: done.signal }, (state) => state.state === 'COMPLETED' && done.abort(new Error('the tracker is done')));
    expect(finished.error).toBeUndefined();
    // Read on until fal closed it, 300 ms later, rather than cut at once.
    expect(finished.ms).toBeGreaterThanOrEqual(250);
    expect(getEventListeners(done.signal, 'abort')).toHaveLength(0);
  });

  it("a failure of the caller's own, thrown where it takes a status, is passed on as it is", async () => {
    const mine = new Error('the caller failed');
    const { error } = await read('two-then-end', {}, () => {
      throw mine;
    });
    expect(error).toBe(mine);
  });
});
