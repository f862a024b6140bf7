import { print } from 'graphql';
import { afterEach, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { createServer, request } from 'node:http';
import { createClient as createWsClient } from 'graphql-ws';
import WebSocket from 'ws';
import { createTransitions } from '../src/domain/transitions.ts';
import { changeTransition } from '../src/domain/state-machine.ts';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { createTestAccount, startTestApp, withoutJobs, type TestApp } from './helpers/app.ts';
import type { AddressInfo } from 'node:net';
import { prefersEventStream, serveInTurn, SetupTurns } from '../src/http/setup-turns.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { TransitionUpdated } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { sseClient, subscribe, wsClient } from './helpers/subscribe.ts';
import { until } from './helpers/wait.ts';
import { metric } from './helpers/metrics.ts';

/**
 * After an API restart every browser reconnects at once. Connections and subscriptions are set
 * up in turns (SUBSCRIPTION_SETUP_CONCURRENCY at once): the burst waits, none is refused.
 */
let p: Pipeline | undefined;
let app: TestApp | undefined;
afterEach(async () => {
  await p?.close();
  p = undefined;
  await app?.close();
  app = undefined;
});

describe('a burst of subscribers', () => {
  it('setup turns: at most `limit` at once, the rest in arrival order, each turn passed on when it ends', async () => {
    const turns = new SetupTurns(2);
    let running = 0;
    let most = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        turns.run(async () => {
          running++;
          most = Math.max(most, running);
          order.push(i);
          await new Promise((r) => setTimeout(r, 5));
          running--;
        }),
      ),
    );
    expect(most).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(turns.queued).toBe(0);
    // Ending a turn twice gives back one turn only.
    const end = await turns.take();
    end();
    end();
    const [a, b] = await Promise.all([turns.take(), turns.take()]);
    let third = false;
    void turns.take().then(() => (third = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(third).toBe(false);
    a();
    await until(() => third, { what: 'the third turn' });
    b();
  });

  it('an event stream request waits for a setup turn once its body is in; one whose client left meanwhile is never served', async () => {
    const turns = new SetupTurns(1);
    const served: string[] = [];
    const sockets = new Map<string, import('node:net').Socket>();
    const requests = new Map<string, import('node:http').IncomingMessage & { body?: unknown }>();
    const bodies = new Map<string, unknown>();
    const server = createServer((req, res) => {
      sockets.set(req.url!, req.socket);
      requests.set(req.url!, req);
      void serveInTurn(turns, req, res, (setUp) => {
        served.push(req.url!);
        bodies.set(req.url!, (req as { body?: unknown }).body);
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        // Its stream's first event is out: the next request's turn.
        res.write(':\n\n', () => setUp());
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const open = (path: string, body = '{}', sendBody = true) => {
      const req = request(`${url}${path}`, { method: 'POST', headers: { accept: 'text/event-stream', 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
      const answered = new Promise<boolean>((resolve) => {
        req.once('response', () => resolve(true));
        req.once('error', () => resolve(false));
      });
      req.flushHeaders();
      if (sendBody) req.end(body);
      return { req, answered, send: () => req.end(body) };
    };
    try {
      const held = await turns.take();
      // A client slow to send its body waits outside the line: it holds no turn, nor a place in it.
      const slow = open('/slow', '{"query":"subscription { x }"}', false);
      const first = open('/first', '{"query":"subscription { y }"}');
      const leaving = open('/leaving');
      await until(() => turns.queued === 2, { what: 'two requests waiting for a turn' });
      expect(served).toEqual([]);
      // Waiting, a body is kept as the bytes it came as (parsed, it could take many times their size).
      expect(requests.get('/first')!.body).toBeUndefined();
      leaving.req.destroy();
      await until(() => sockets.get('/leaving')?.destroyed, { what: 'the server to see the client leave' });
      held();
      expect(await first.answered).toBe(true);
      // The one that left is skipped, and the turn comes back free once the first is set up.
      const next = await turns.take();
      expect(served).toEqual(['/first']);
      // Served, a GraphQL request in JSON goes to Yoga parsed (no body stream for the stream's life).
      expect(bodies.get('/first')).toEqual({ query: 'subscription { y }' });
      expect(turns.queued).toBe(0);
      next();
      slow.send();
      expect(await slow.answered).toBe(true);
      expect(served).toEqual(['/first', '/slow']);
      for (const r of [first, slow]) r.req.destroy();
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('near the heap limit a stream is refused 503 with a Retry-After a browser on an allowed origin can read, on arrival or when its turn comes, and gives its turn back', async () => {
    const turns = new SetupTurns(1);
    let served = 0;
    let full = true;
    const cors = { 'access-control-allow-origin': 'https://studio.example', 'access-control-expose-headers': 'retry-after' };
    const server = createServer((req, res) => void serveInTurn(turns, req, res, () => served++, { full: () => full, refusalHeaders: () => cors }));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const ask = () =>
      fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`, {
        method: 'POST',
        headers: { accept: 'text/event-stream', 'content-type': 'application/json' },
        body: '{"query":"subscription { x }"}',
      });
    const refused = async (response: Response) => {
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('10');
      expect(response.headers.get('access-control-allow-origin')).toBe(cors['access-control-allow-origin']);
      expect(response.headers.get('access-control-expose-headers')).toBe('retry-after');
      expect((await response.json()).errors[0].extensions).toEqual({ code: 'UNAVAILABLE' });
    };
    try {
      // Full on arrival: refused before it takes a place in line.
      await refused(await ask());
      // Room on arrival, full when its turn comes.
      full = false;
      const held = await turns.take();
      const waiting = ask();
      await until(() => turns.queued === 1, { what: 'the request in line' });
      full = true;
      held();
      await refused(await waiting);
      expect(served).toBe(0);
      // Its turn was given back.
      expect(turns.queued).toBe(0);
      const next = await turns.take();
      next();
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('waits in line only for requests that ask for an event stream above all (graphql-sse, EventSource, GraphiQL), not for queries that merely accept one (urql)', () => {
    expect(prefersEventStream('text/event-stream')).toBe(true);
    expect(prefersEventStream('Text/Event-Stream; charset=utf-8')).toBe(true);
    expect(prefersEventStream('text/event-stream, multipart/mixed')).toBe(true);
    expect(prefersEventStream('application/json;q=0.5, text/event-stream')).toBe(true);
    expect(prefersEventStream('application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed')).toBe(false);
    expect(prefersEventStream('text/event-stream;q=0.1, application/json')).toBe(false);
    expect(prefersEventStream('application/graphql-response+json, application/json, multipart/mixed')).toBe(false);
    expect(prefersEventStream('*/*')).toBe(false);
    expect(prefersEventStream(undefined)).toBe(false);
  });

  it('on the API, an SSE subscription waits for the turn a setup holds, ends its own turn with its snapshot, and a query does not wait', { timeout: 60_000 }, async () => {
    p = await startPipeline({ env: { SUBSCRIPTION_SETUP_CONCURRENCY: '1', SUBSCRIPTIONS_PER_ACCOUNT: '100' } });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(1) });
    const batchId = encodeId('Batch', batch!.id);
    const waiting = () => metric(p!.app.url, 'segue_subscription_setups_waiting', '', true);
    const sse = sseClient(p.app.graphqlUrl, account.apiKey);
    try {
      // An account-wide stream has no snapshot: it keeps the one turn until SNAPSHOT_TURN_MS.
      const quiet = subscribe(sse, TransitionUpdated, {}, (d) => d.transitionUpdated);
      await until(async () => (await metric(p!.app.url, 'segue_subscriptions_open', '', true)) === 1, { what: 'the account-wide stream set up' });
      const openedAt = Date.now();
      const viewer = subscribe(sse, TransitionUpdated, { batchId }, (d) => d.transitionUpdated);
      await until(async () => (await waiting()) === 1, { what: 'the viewer waiting for a turn' });
      // A query is not in that line.
      const asked = Date.now();
      const query = await fetch(p.app.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json, text/event-stream', authorization: `Bearer ${account.apiKey}` },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
      expect(await query.json()).toEqual({ data: { __typename: 'Query' } });
      expect(Date.now() - asked).toBeLessThan(1_000);
      // A request for a stream waits with its body in memory: a large one is refused at once.
      const large = await fetch(p.app.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${account.apiKey}` },
        body: JSON.stringify({ query: `subscription { transitionUpdated { id } } # ${'x'.repeat(70 * 1024)}` }),
      });
      expect(large.status).toBe(413);
      await viewer.first;
      expect(Date.now() - openedAt).toBeGreaterThanOrEqual(1_000);
      // The viewer's turn ended with its snapshot, not 2 s later: the next one is set up at once.
      const next = subscribe(sse, TransitionUpdated, { batchId }, (d) => d.transitionUpdated);
      const nextAt = Date.now();
      await next.first;
      expect(Date.now() - nextAt).toBeLessThan(1_500);
      expect(await waiting()).toBe(0);
      for (const s of [quiet, viewer, next]) s.stop();
    } finally {
      sse.dispose();
    }
  });

  it('near the heap limit a WebSocket is closed 1013 (Try Again Later) as it opens, or when its turn comes to connect or to set up a subscription; a connection with anything else under way keeps it and has that subscription refused alone; a graphql-ws client comes back by itself once there is room', { timeout: 60_000 }, async () => {
    let full = true;
    const turns = new SetupTurns(1);
    app = await startTestApp({ SUBSCRIPTIONS_PER_ACCOUNT: '100' }, { heapNearLimit: () => full, setupTurns: turns });
    const { url, graphqlUrl } = app;
    const account = await createTestAccount(app.segue);
    const { transitions, batch } = await createTransitions(withoutJobs(app.segue), account.id, { generate: true, transitions: transitionInputs(2) });
    const batchId = encodeId('Batch', batch!.id);
    const wsUrl = graphqlUrl.replace(/^http/, 'ws');
    const refused = (transport: string) => metric(url, 'segue_subscriptions_refused_total', `transport="${transport}"`);
    const closeOf = (ws: WebSocket) => new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    const init = JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${account.apiKey}` } });

    // Full on arrival: closed 1013 as it opens, before its connection_init; an SSE request gets 503.
    const early = new WebSocket(wsUrl, 'graphql-transport-ws');
    expect(await closeOf(early)).toBe(1013);
    const sse = await fetch(graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${account.apiKey}` },
      body: JSON.stringify({ query: 'subscription { transitionUpdated { id } }' }),
    });
    expect(sse.status).toBe(503);
    // A refused socket that sends a malformed frame (unmasked) before it is closed: the API stays up.
    const port = new URL(url).port;
    const raw = connect(Number(port), '127.0.0.1');
    raw.on('error', () => undefined);
    raw.write(`GET /graphql HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n`);
    await new Promise((resolve) => raw.once('data', resolve));
    raw.write(Buffer.from([0x81, 0x00]));
    await new Promise((resolve) => raw.once('close', resolve));
    expect((await fetch(`${url}/health`)).status).toBe(200);
    expect(await refused('websocket')).toBe(2);
    expect(await refused('sse')).toBe(1);

    full = false;
    const closes: number[] = [];
    const holder = wsClient(wsUrl, account.apiKey);
    // Comes back after a refusal (graphql-ws' own retries, as soon as there is room here) and subscribes again.
    const viewer = createWsClient({
      url: wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${account.apiKey}` },
      lazy: false,
      retryAttempts: 5,
      retryWait: async () => {
        await until(() => !full, { what: 'room' });
      },
      on: { closed: (event) => closes.push((event as { code: number }).code) },
    });
    const connected = new Promise<void>((resolve) => viewer.on('connected', () => resolve()));
    try {
      await connected;
      // A stream set up before the heap fills up (account-wide: no snapshot, its turn ends by SNAPSHOT_TURN_MS).
      const running = subscribe(holder, TransitionUpdated, {}, (d) => d.transitionUpdated);
      await until(async () => (await metric(url, 'segue_subscriptions_open', '', true)) === 1, { what: 'the running stream set up' });
      const held = await turns.take();
      // In line when the heap fills up: a connection, the first stream of a connection, and a
      // further stream of a connection with one running.
      const late = new WebSocket(wsUrl, 'graphql-transport-ws');
      const lateClose = closeOf(late);
      late.once('open', () => late.send(init));
      const watched = subscribe(viewer, TransitionUpdated, { batchId }, (d) => d.transitionUpdated);
      // (What ends it first: an error message, as graphql-ws ends a refused operation, not a result and a complete.)
      const further = new Promise<unknown>((resolve) =>
        holder.subscribe({ query: print(TransitionUpdated), variables: { batchId } }, { next: (result) => resolve({ next: result }), error: (error) => resolve({ error }), complete: () => resolve('complete') }),
      );
      await until(() => turns.queued === 3, { what: 'three setups waiting for the turn' });
      full = true;
      held();
      expect(await lateClose).toBe(1013);
      await until(() => closes.includes(1013), { what: 'the viewer closed 1013' });
      expect(await further).toEqual({ error: [expect.objectContaining({ extensions: { code: 'UNAVAILABLE', retryAfter: 10 } })] });
      expect(watched.events).toEqual([]);
      // One refusal each, the two before included.
      expect(await refused('websocket')).toBe(5);
      full = false;
      await until(() => watched.events.length === 2, { what: "the viewer's snapshot once it came back" });
      expect(watched.events.map((e) => e.status)).toEqual(['QUEUED', 'QUEUED']);
      expect(watched.errors).toEqual([]);
      // The stream set up before the heap filled up went on throughout: it has the next change.
      await changeTransition(app.segue, transitions[0]!, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date() }, { from: ['QUEUED'] });
      await until(() => running.events.some((e) => e.status === 'SUBMITTED') && watched.events.some((e) => e.status === 'SUBMITTED'), { what: 'the change on both streams' });
      expect(running.errors).toEqual([]);
      for (const s of [running, watched]) s.stop();
    } finally {
      await Promise.all([holder.dispose(), viewer.dispose()]);
    }
  });

  it('150 WebSocket and 50 SSE subscribers connecting at once, 2 set up at a time: every one gets its snapshot and every change', { timeout: 120_000 }, async () => {
    p = await startPipeline({
      emulator: { latencyMs: 300 },
      env: { SUBSCRIPTION_SETUP_CONCURRENCY: '2', SUBSCRIPTIONS_PER_ACCOUNT: '1000' },
    });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(3) });
    const batchId = encodeId('Batch', batch!.id);
    const clients = [
      ...Array.from({ length: 150 }, () => wsClient(p!.app.url + '/graphql', account.apiKey)),
      ...Array.from({ length: 50 }, () => sseClient(p!.app.graphqlUrl, account.apiKey)),
    ];
    const subs = clients.map((client) => subscribe(client, TransitionUpdated, { batchId }, (d) => d.transitionUpdated));
    await until(() => subs.every((s) => s.events.length >= 3), { what: 'every snapshot', timeoutMs: 60_000 });
    expect(subs.every((s) => s.events.slice(0, 3).every((e) => e.status === 'QUEUED'))).toBe(true);

    await p.startInlineWorker();
    await Promise.all(subs.map((s) => s.done));
    for (const s of subs) {
      expect(s.errors).toEqual([]);
      const last = new Map(s.events.map((e) => [e.id, e.status]));
      expect([...last.values()]).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    }
    await Promise.all(clients.map((c) => c.dispose()));
  });
});
