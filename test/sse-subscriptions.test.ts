import { Request as YogaRequest } from '@whatwg-node/fetch';
import { request, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Session } from 'node:inspector/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTransitions } from '../src/domain/transitions.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { createTestAccount, startTestApp, withoutJobs, type TestAccount, type TestApp } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';

/** Every browser origin (the default outside production), and a list of two. */
let anyOrigin: TestApp;
let listed: TestApp;
beforeAll(async () => {
  [anyOrigin, listed] = await Promise.all([startTestApp(), startTestApp({ CORS_ORIGINS: 'https://a.example, https://b.example' })]);
});
afterAll(() => Promise.all([anyOrigin?.close(), listed?.close()]));

const QUERY = 'subscription Progress($id: ID!) { batchProgress(id: $id) { id total } }';

/**
 * graphql-sse's single connection mode sends its token with every request: Yoga, which has no
 * such mode, serves the request as it would without it, and Segue leaves such requests to Yoga.
 * The same subscription with it is how a test sees what Yoga itself answers.
 */
const VIA_YOGA = { 'x-graphql-event-stream-token': 'any' };

interface OpenStream {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body up to and with its first `next` event. */
  text: string;
  close(): void;
}

/** An SSE request over node:http (no fetch Request in this process), read up to its first event, within 10 s. */
function openStream(app: TestApp, method: 'GET' | 'POST', params: Record<string, unknown>, headers: Record<string, string>): Promise<OpenStream> {
  const url = new URL(app.graphqlUrl);
  let body: string | undefined;
  if (method === 'GET') {
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, typeof value === 'string' ? value : JSON.stringify(value));
  } else body = JSON.stringify(params);
  return new Promise((resolve, reject) => {
    let req: ClientRequest;
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no first event within 10 s (${method} ${JSON.stringify(headers)})`));
    }, 10_000);
    req = request(url, {
      method,
      headers: { accept: 'text/event-stream', ...(body && { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }), ...headers },
    });
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      const onData = (chunk: string) => {
        text += chunk;
        if (!/event: next\ndata: .*\n\n/.test(text)) return;
        clearTimeout(timer);
        res.off('data', onData);
        resolve({ status: res.statusCode!, headers: res.headers, text, close: () => req.destroy() });
      };
      res.on('data', onData);
      res.on('end', () => {
        clearTimeout(timer);
        reject(new Error(`the stream ended before its first event: ${res.statusCode} ${text}`));
      });
    });
    req.end(body);
  });
}

/** The response's headers but its date, which changes from one to the next. */
const headersOf = ({ headers }: OpenStream) => {
  const { date: _, ...rest } = headers;
  return rest;
};

async function batchOf(app: TestApp, account: TestAccount) {
  const { batch } = await createTransitions(withoutJobs(app.segue), account.id, { generate: true, transitions: transitionInputs(2) });
  return encodeId('Batch', batch!.id);
}

/**
 * Live objects of Yoga's fetch Request class in this process (where the test's API runs), after
 * a full collection: the inspector's queryObjects, as DevTools' `queryObjects(Request)`.
 */
async function liveYogaRequests(): Promise<number> {
  const session = new Session();
  session.connect();
  const probe = globalThis as { __segueRequestPrototype?: unknown };
  probe.__segueRequestPrototype = YogaRequest.prototype;
  try {
    const { result } = await session.post('Runtime.evaluate', { expression: 'globalThis.__segueRequestPrototype' });
    const { objects } = await session.post('Runtime.queryObjects', { prototypeObjectId: result.objectId! });
    const { result: count } = await session.post('Runtime.callFunctionOn', {
      objectId: objects.objectId!,
      functionDeclaration: 'function () { return this.length; }',
      returnByValue: true,
    });
    return count.value as number;
  } finally {
    delete probe.__segueRequestPrototype;
    session.disconnect();
  }
}

describe('subscriptions over SSE, served beside Yoga', () => {
  it("are answered exactly as Yoga answers them: status, headers (CORS's too) and events, over GET and POST", async () => {
    const cases: Array<[string, TestApp, Record<string, string>]> = [
      ['no Origin', anyOrigin, {}],
      ['any origin allowed', anyOrigin, { origin: 'https://app.example' }],
      ['a listed origin', listed, { origin: 'https://b.example' }],
      ['an origin not listed', listed, { origin: 'https://c.example' }],
    ];
    for (const [what, app, origin] of cases) {
      const account = await createTestAccount(app.segue);
      const batchId = await batchOf(app, account);
      const params = { query: QUERY, variables: { id: batchId }, operationName: 'Progress' };
      for (const method of ['GET', 'POST'] as const) {
        const headers = { authorization: `Bearer ${account.apiKey}`, ...origin };
        const direct = await openStream(app, method, params, headers);
        const yoga = await openStream(app, method, params, { ...headers, ...VIA_YOGA });
        direct.close();
        yoga.close();
        const label = `${what}, ${method}`;
        expect(direct.status, label).toBe(200);
        expect(headersOf(direct), label).toEqual(headersOf(yoga));
        expect(direct.text, label).toBe(yoga.text);
        expect(direct.text, label).toBe(`:\n\nevent: next\ndata: ${JSON.stringify({ data: { batchProgress: { id: batchId, total: 2 } } })}\n\n`);
      }
    }
    // What the comparison stands on, spelled out once.
    const account = await createTestAccount(listed.segue);
    const stream = await openStream(listed, 'POST', { query: QUERY, variables: { id: await batchOf(listed, account) } }, {
      authorization: `Bearer ${account.apiKey}`,
      origin: 'https://a.example',
    });
    stream.close();
    expect(headersOf(stream)).toEqual({
      'content-type': 'text/event-stream',
      connection: 'keep-alive',
      'cache-control': 'no-cache',
      'content-encoding': 'none',
      'access-control-allow-origin': 'https://a.example',
      'access-control-allow-methods': 'GET, POST',
      'access-control-allow-headers': 'authorization, content-type, accept',
      vary: 'Origin',
      'transfer-encoding': 'chunked',
    });
  });

  it("leave to Yoga, untouched, whatever they do not serve: every such request gets Yoga's own answer", async () => {
    const app = anyOrigin;
    const account = await createTestAccount(app.segue);
    const batchId = await batchOf(app, account);
    const auth = { authorization: `Bearer ${account.apiKey}` };
    const progress = (id: unknown) => ({ query: QUERY, variables: { id } });
    const cases: Array<[string, 'GET' | 'POST', Record<string, unknown>, Record<string, string>]> = [
      ['no credential', 'POST', progress(batchId), {}],
      ['a key that does not exist', 'POST', progress(batchId), { authorization: 'Bearer sg_nope' }],
      ['a syntax error', 'POST', { query: 'subscription { batchProgress(id: ' }, auth],
      ['an unknown field', 'POST', { query: 'subscription { nope }' }, auth],
      // graphql-armor's limits throw from validation.
      ['too many aliases', 'POST', { query: `subscription { batchProgress(id: "x") { ${Array.from({ length: 60 }, (_, i) => `a${i}: id`).join(' ')} } }` }, auth],
      ['a query', 'POST', { query: '{ viewer { id } }' }, auth],
      ['a query over GET', 'GET', { query: '{ viewer { id } }' }, auth],
      ['a mutation over GET', 'GET', { query: 'mutation { deleteTransitions(input: { ids: [] }) { deletedIds } }' }, auth],
      ['a batch not found', 'POST', progress(encodeId('Batch', '00000000-0000-7000-8000-000000000000')), auth],
      ['a variable of the wrong type', 'POST', progress(5), auth],
      ['a missing variable', 'POST', { query: QUERY }, auth],
      ['two operations and no name', 'POST', { query: `${QUERY} subscription Other { transitionUpdated { id } }`, variables: { id: batchId } }, auth],
      ['an operation name not in the document', 'POST', { ...progress(batchId), operationName: 'Nope' }, auth],
      ['variables that are a list', 'POST', { query: QUERY, variables: [batchId] }, auth],
      ['an operation name that is a number', 'POST', { ...progress(batchId), operationName: 5 }, auth],
      ['variables that are not JSON, over GET', 'GET', { query: QUERY, variables: '{"id":' }, auth],
    ];
    const answer = async (method: 'GET' | 'POST', params: Record<string, unknown>, headers: Record<string, string>) => {
      const url = new URL(app.graphqlUrl);
      if (method === 'GET') for (const [key, value] of Object.entries(params)) url.searchParams.set(key, typeof value === 'string' ? value : JSON.stringify(value));
      const response = await fetch(url, {
        method,
        headers: { accept: 'text/event-stream', ...(method === 'POST' && { 'content-type': 'application/json' }), ...headers },
        ...(method === 'POST' && { body: JSON.stringify(params) }),
        signal: AbortSignal.timeout(10_000),
      });
      const { date: _, ...rest } = Object.fromEntries(response.headers);
      return { status: response.status, headers: rest, body: await response.text() };
    };
    for (const [what, method, params, headers] of cases) {
      const direct = await answer(method, params, headers);
      expect(direct, what).toEqual(await answer(method, params, { ...headers, ...VIA_YOGA }));
      // Never a 5xx; a query is answered (as one event), everything else refused.
      expect(direct.status, what).toBeLessThan(500);
      expect(direct.body, what).toMatch(what.startsWith('a query') ? /"data":\{"viewer"/ : /"errors":\[/);
    }
  });

  it('keep neither the key they were opened with, nor their body, nor what reading it left on the request, once their stream is up', async () => {
    const app = anyOrigin;
    const account = await createTestAccount(app.segue);
    const batchId = await batchOf(app, account);
    const seen: IncomingMessage[] = [];
    const onRequest = (req: IncomingMessage) => void seen.push(req);
    app.server.prependListener('request', onRequest);
    const listeners: Record<string, Record<string, number>> = {};
    try {
      for (const method of ['GET', 'POST'] as const) {
        const stream = await openStream(app, method, { query: QUERY, variables: { id: batchId } }, { authorization: `Bearer ${account.apiKey}` });
        const req = seen.at(-1) as IncomingMessage & { body?: unknown };
        stream.close();
        expect(req.method).toBe(method);
        expect(req.headers.authorization, method).toBeUndefined();
        expect(req.rawHeaders.join('\n'), method).not.toContain(account.apiKey);
        expect(req.body, method).toBeUndefined();
        listeners[method] = Object.fromEntries(req.eventNames().map((name) => [String(name), req.listenerCount(name)]));
      }
      // Reading a POST's body left nothing on the request that a GET's has not (Node's async
      // iterator leaves a dozen end-of-stream listeners, kept for the stream's life).
      expect(listeners.POST).toEqual(listeners.GET);
    } finally {
      app.server.off('request', onRequest);
    }
  });

  it('keep no fetch Request for their life, where a stream Yoga serves keeps its own', async () => {
    const app = anyOrigin;
    const account = await createTestAccount(app.segue);
    const batchId = await batchOf(app, account);
    const params = { query: QUERY, variables: { id: batchId } };
    const headers = { authorization: `Bearer ${account.apiKey}` };
    const open = (extra: Record<string, string>) => Promise.all(Array.from({ length: 10 }, () => openStream(app, 'POST', params, { ...headers, ...extra })));
    const before = await liveYogaRequests();
    const direct = await open({});
    const withDirect = await liveYogaRequests();
    // The measure sees what a stream keeps: the same ten through Yoga keep one each.
    const viaYoga = await open(VIA_YOGA);
    const withYoga = await liveYogaRequests();
    for (const stream of [...direct, ...viaYoga]) stream.close();
    expect(withDirect - before).toBeLessThanOrEqual(1);
    expect(withYoga - withDirect).toBeGreaterThanOrEqual(10);
  });
});
