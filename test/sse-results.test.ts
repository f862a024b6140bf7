import { GraphQLError, type ExecutionResult } from 'graphql';
import { createSchema, createYoga, getSSEProcessor } from 'graphql-yoga';
import { createClient } from 'graphql-sse';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { sseResults, type SseOptions } from '../src/graphql/sse-results.ts';

// Yoga's own fetch API (the ponyfill it answers with on Node), as the processor is given it.
const { fetchAPI } = createYoga({ schema: createSchema({ typeDefs: 'type Query { ok: Boolean }' }) });

async function* resultsOf(values: ExecutionResult[], failWith?: Error): AsyncGenerator<ExecutionResult> {
  for (const value of values) yield value;
  if (failWith) throw failWith;
}

/** The body's text up to its end (or its failure). */
async function readAll(response: Response): Promise<string> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return text;
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    return text;
  }
}

const logged: unknown[] = [];
const options = (more: Partial<SseOptions> = {}): SseOptions => ({ keepAliveMs: 60_000, log: { error: (e) => logged.push(e) }, ...more });
const sse = (values: ExecutionResult[], more: Partial<SseOptions> = {}, failWith?: Error) =>
  sseResults(options(more))(resultsOf(values, failWith), fetchAPI as never, 'text/event-stream') as Promise<Response>;

const WITH_ERRORS: ExecutionResult = {
  data: null,
  errors: [
    new GraphQLError('Unexpected error.', { path: ['transitionUpdated'], extensions: { code: 'INTERNAL', http: { status: 500 }, unexpected: true } }),
    new GraphQLError('Not yours.', { path: ['transitionUpdated'], extensions: { code: 'NOT_FOUND' } }),
  ],
  extensions: { http: { status: 500 }, traceId: 't1' },
};

// Keep-alive intervals are counted (none may be left) and driven by the tests.
beforeEach(() => vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] }));

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
  logged.length = 0;
});

describe('subscription results as server-sent events', () => {
  it("says what Yoga's own processor says, byte for byte: status, headers, events, errors and the end", async () => {
    const results: ExecutionResult[] = [{ data: { transitionUpdated: { id: 'VHJhbnNpdGlvbjox', status: 'QUEUED' } } }, WITH_ERRORS, { data: { ok: true }, extensions: { http: { status: 200 } } }];
    const yogas = await getSSEProcessor()(resultsOf(results), fetchAPI as never, 'text/event-stream');
    const ours = await sse(results);
    expect(ours.status).toBe(yogas.status);
    expect([...ours.headers.entries()]).toEqual([...yogas.headers.entries()]);
    expect(await readAll(ours)).toBe(await readAll(yogas));
  });

  it('writes a result once for every subscriber it is shared with, and lets go of its timer and its turn at the end', async () => {
    const shared: ExecutionResult = { data: { transitionUpdated: { id: 'VHJhbnNpdGlvbjox', status: 'QUEUED' } } };
    const stringify = vi.spyOn(JSON, 'stringify');
    let setUp = 0;
    const bodies = await Promise.all([1, 2, 3].map(async () => readAll(await sse([shared], { setUp: () => setUp++ }))));
    for (const text of bodies) expect(text).toBe(':\n\nevent: next\ndata: {"data":{"transitionUpdated":{"id":"VHJhbnNpdGlvbjox","status":"QUEUED"}}}\n\nevent: complete\ndata:\n\n');
    // Three subscribers, one serialization of the result they share.
    expect(stringify.mock.calls.filter(([value]) => value === shared)).toHaveLength(1);
    expect(setUp).toBe(3);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a stream that fails midway is logged and closes its connection, with no `complete`', async () => {
    let destroyed = 0;
    let setUp = 0;
    const failure = new Error('the source failed');
    const text = await readAll(await sse([{ data: { ok: true } }], { connection: { destroy: () => destroyed++ }, setUp: () => setUp++ }, failure));
    expect(text).toBe(':\n\nevent: next\ndata: {"data":{"ok":true}}\n\n');
    await expect.poll(() => destroyed).toBe(1);
    expect(logged).toEqual([failure]);
    expect(setUp).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a subscription that ends with an error for its client (LIMIT_EXCEEDED) sends it as its last `next`, then `complete`: a graphql-sse client gets the reason and the end', async () => {
    let destroyed = 0;
    let setUp = 0;
    const behind = new GraphQLError('This subscription fell 10 events behind and was ended; subscribe again.', { extensions: { code: 'LIMIT_EXCEEDED' } });
    const more = { connection: { destroy: () => destroyed++ }, setUp: () => setUp++ };
    const text = await readAll(await sse([{ data: { ok: true } }], more, behind));
    expect(text).toBe(
      ':\n\nevent: next\ndata: {"data":{"ok":true}}\n\n' +
        'event: next\ndata: {"errors":[{"message":"This subscription fell 10 events behind and was ended; subscribe again.","extensions":{"code":"LIMIT_EXCEEDED"}}]}\n\n' +
        'event: complete\ndata:\n\n',
    );
    // The response ends as it should (its connection may serve again); the original was logged
    // where it was masked, not here.
    expect(destroyed).toBe(0);
    expect(logged).toEqual([]);
    expect(setUp).toBe(1);
    expect(vi.getTimerCount()).toBe(0);

    // The server's own extensions stay with the server, as in any result.
    const unexpected = new GraphQLError('Unexpected error.', { extensions: { code: 'INTERNAL', http: { status: 500 }, unexpected: true } });
    expect(await readAll(await sse([], {}, unexpected))).toBe(':\n\nevent: next\ndata: {"errors":[{"message":"Unexpected error.","extensions":{"code":"INTERNAL"}}]}\n\nevent: complete\ndata:\n\n');

    // A real GraphQL-over-SSE client, the whole body arriving as one chunk and then its end (as a
    // browser may read it): the reason, then the end of the subscription, never a hang.
    const client = createClient({
      url: 'http://segue.test/graphql',
      fetchFn: async () => new Response(await readAll(await sse([{ data: { ok: 1 } }], {}, behind)), { headers: { 'content-type': 'text/event-stream' } }),
      retryAttempts: 0,
    });
    const seen = await new Promise<unknown[]>((resolve, reject) => {
      const got: unknown[] = [];
      client.subscribe({ query: 'subscription { ok }' }, { next: (value) => got.push(value), error: reject, complete: () => resolve(got) });
    });
    client.dispose();
    expect(seen).toEqual([{ data: { ok: 1 } }, { errors: [{ message: behind.message, extensions: { code: 'LIMIT_EXCEEDED' } }] }]);
  });

  it('an idle stream is sent a comment every keepAliveMs; a client that leaves ends the subscription under it, and its turn', async () => {
    let returned = 0;
    let setUp = 0;
    // A subscription with nothing to say: its read waits until the stream is ended.
    const idle: AsyncIterableIterator<ExecutionResult> = {
      next: () => new Promise(() => undefined),
      return: async () => {
        returned++;
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
    const response = await sseResults(options({ keepAliveMs: 1_000, setUp: () => setUp++ }))(idle, fetchAPI as never, 'text/event-stream');
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value);
    for (let i = 0; i < 3; i++) {
      vi.advanceTimersByTime(1_000);
      text += decoder.decode((await reader.read()).value);
    }
    expect(text).toBe(':\n\n'.repeat(4));
    expect(setUp).toBe(0);
    await reader.cancel();
    await expect.poll(() => returned).toBe(1);
    expect(setUp).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });
});
