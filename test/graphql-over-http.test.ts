import { auditServer } from 'graphql-http';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTransitions } from '../src/domain/transitions.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { createTestAccount, startTestApp, withoutJobs, type TestApp } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({ INTROSPECTION: 'true' });
});
afterAll(() => app?.close());

const post = (body: string, headers: Record<string, string> = {}) =>
  fetch(app.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json', ...headers },
    body,
  });

describe('GraphQL over HTTP (graphql-http audits)', () => {
  it('passes every audit of graphql-http, MUST, SHOULD and MAY alike', async () => {
    const results = await auditServer({ url: app.graphqlUrl });
    const failed = await Promise.all(
      results
        .filter((r) => r.status !== 'ok')
        .map(async (r) => `${r.status} ${r.name}: ${r.reason} (${'response' in r ? `${r.response.status} ${await r.response.text()}` : ''})`),
    );
    expect(failed).toEqual([]);
    expect(results).toHaveLength(61);
  });

  it("keeps Segue's error codes in extensions while the status says what went wrong, and never shows the http extension", async () => {
    const cases: Array<[string, Response, number, string]> = [
      ['invalid JSON', await post('{"query": '), 400, 'BAD_USER_INPUT'],
      ['a syntax error', await post(JSON.stringify({ query: '{ viewer ' })), 400, 'BAD_USER_INPUT'],
      ['an unknown field', await post(JSON.stringify({ query: '{ nope }' })), 400, 'BAD_USER_INPUT'],
      ['a mutation over GET', await fetch(`${app.graphqlUrl}?query=${encodeURIComponent('mutation { deleteTransitions(input: { ids: [] }) { deletedIds } }')}`, { headers: { accept: 'application/graphql-response+json' } }), 405, 'BAD_USER_INPUT'],
      ['no credential', await post(JSON.stringify({ query: '{ viewer { id } }' })), 200, 'UNAUTHENTICATED'],
      // Yoga's GET parser let JSON.parse's error through: a 200 INTERNAL, logged as unexpected.
      ['invalid JSON in GET variables', await fetch(`${app.graphqlUrl}?query=${encodeURIComponent('{ viewer { id } }')}&variables=${encodeURIComponent('{"id":')}`, { headers: { accept: 'application/graphql-response+json' } }), 400, 'BAD_USER_INPUT'],
      ['invalid JSON in GET extensions', await fetch(`${app.graphqlUrl}?query=${encodeURIComponent('{ viewer { id } }')}&extensions=x`, { headers: { accept: 'application/graphql-response+json' } }), 400, 'BAD_USER_INPUT'],
    ];
    for (const [what, response, status, code] of cases) {
      expect(response.status, what).toBe(status);
      const body = (await response.json()) as { errors: Array<{ extensions: Record<string, unknown> }> };
      expect(body.errors.map((e) => e.extensions.code), what).toEqual([code]);
      expect(body.errors[0]!.extensions.http, what).toBeUndefined();
    }
    // An error of execution (a well-formed request) answers 200 with data, as the spec has it.
    const account = await createTestAccount(app.segue);
    const notFound = await post(JSON.stringify({ query: '{ batch(id: "QmF0Y2g6MDAwMDAwMDAtMDAwMC03MDAwLTgwMDAtMDAwMDAwMDAwMDAw") { id } }' }), {
      authorization: `Bearer ${account.apiKey}`,
    });
    expect(notFound.status).toBe(200);
    expect(((await notFound.json()) as { errors: Array<{ extensions: { code: string } }> }).errors[0]!.extensions.code).toBe('NOT_FOUND');
  });

  it('answers as the README says to a client that accepts application/json or anything (curl): 200 for errors of the query itself, 400 or 405 for the rest', async () => {
    const account = await createTestAccount(app.segue);
    const auth = { authorization: `Bearer ${account.apiKey}` };
    // Variables that do not fit their types: graphql-http's own audit of this never uses its variable.
    const unfit = JSON.stringify({
      query: 'mutation($input: CreateTransitionsInput!) { createTransitions(input: $input) { batch { id } } }',
      variables: { input: { transitions: [{ frontImageUrl: 'https://example.com/a.png', tailImageUrl: 'https://example.com/b.png' }] } },
    });
    for (const accept of ['application/json', '*/*']) {
      const cases: Array<[string, Response, number]> = [
        ['a syntax error', await post(JSON.stringify({ query: '{ viewer ' }), { accept, ...auth }), 200],
        ['an unknown field', await post(JSON.stringify({ query: '{ nope }' }), { accept, ...auth }), 200],
        ['invalid JSON', await post('{"query": ', { accept, ...auth }), 400],
        ['a query that is not a string', await post(JSON.stringify({ query: 7 }), { accept, ...auth }), 400],
        ['variables that do not fit their types', await post(unfit, { accept, ...auth }), 400],
        ['a mutation over GET', await fetch(`${app.graphqlUrl}?query=${encodeURIComponent('mutation { deleteTransitions(input: { ids: [] }) { deletedIds } }')}`, { headers: { accept, ...auth } }), 405],
      ];
      for (const [what, response, status] of cases) {
        expect(response.status, `${what} (${accept})`).toBe(status);
        const body = (await response.json()) as { errors: Array<{ extensions: Record<string, unknown> }> };
        expect(body.errors.map((e) => e.extensions.code), `${what} (${accept})`).toEqual(['BAD_USER_INPUT']);
      }
    }
    // The same unfit variables under application/graphql-response+json: 400 too, and nothing was created.
    expect((await post(unfit, auth)).status).toBe(400);
    expect(await app.segue.db.transition.count({ where: { accountId: account.id } })).toBe(0);
  });

  it('answers a subscription over HTTP as a query: 400 for variables that do not fit, 200 for a refused field', async () => {
    const account = await createTestAccount(app.segue);
    const auth = { authorization: `Bearer ${account.apiKey}` };
    const unfit = JSON.stringify({ query: 'subscription($id: ID!) { batchProgress(id: $id) { id } }', variables: {} });
    for (const accept of ['application/graphql-response+json', 'application/json', 'text/event-stream']) {
      const response = await post(unfit, { accept, ...auth });
      expect(response.status, accept).toBe(400);
      const text = await response.text();
      expect(text, accept).toMatch(/"code":"BAD_USER_INPUT"/);
      expect(text, accept).not.toMatch(/"http"/);
    }
    const codes = async (response: Response) => ((await response.json()) as { errors: Array<{ extensions: { code: string } }> }).errors.map((e) => e.extensions.code);
    const refused = await post(JSON.stringify({ query: 'subscription { transitionUpdated { id } }' }));
    expect(refused.status).toBe(200);
    expect(await codes(refused)).toEqual(['UNAUTHENTICATED']);
    // Refused by its resolver (a batch that is not there): an error of the field, 200 as for a query.
    const missing = await post(JSON.stringify({ query: 'subscription { batchProgress(id: "QmF0Y2g6MDAwMDAwMDAtMDAwMC03MDAwLTgwMDAtMDAwMDAwMDAwMDAw") { id } }' }), auth);
    expect(missing.status).toBe(200);
    expect(await codes(missing)).toEqual(['NOT_FOUND']);
  });

  it('over SSE, a JSON body reaches Yoga parsed (no body stream kept for the life of the stream); any other body is read and refused as Yoga reads it', async () => {
    const account = await createTestAccount(app.segue);
    const headers = (contentType: string) => ({ 'content-type': contentType, accept: 'text/event-stream', authorization: `Bearer ${account.apiKey}` });
    // Not a JSON object: read from a stream of the bytes sent, and answered as Yoga answers them
    // (over SSE, a refusal of the body itself comes as the stream's one event).
    const refused: Array<[string, string, string, number, string | null]> = [
      ['invalid JSON', 'application/json', '{"query": ', 200, 'POST body sent invalid JSON.'],
      ['an empty object', 'application/json', '{}', 200, 'Must provide query string.'],
      ['an array', 'application/json', JSON.stringify([{ query: 'subscription { transitionUpdated { id } }' }]), 400, 'Batching is not supported.'],
      ['null', 'application/json', 'null', 400, 'POST body is expected to be object but received null'],
      ['not JSON', 'text/plain', 'subscription { transitionUpdated { id } }', 415, null],
      // Yoga's test of the media type is exact.
      ['JSON in capitals', 'APPLICATION/JSON', JSON.stringify({ query: 'subscription { transitionUpdated { id } }' }), 415, null],
      // A field a GraphQL request has not; `then` would make the server adapter take the parsed object for a promise.
      ['a `then` field', 'application/json', JSON.stringify({ query: 'subscription { transitionUpdated { id } }', then: 1 }), 400, 'Unexpected parameter "then" in the request body.'],
    ];
    for (const [what, contentType, text, status, message] of refused) {
      const response = await fetch(app.graphqlUrl, { method: 'POST', headers: headers(contentType), body: text });
      expect(response.status, what).toBe(status);
      const sent = await response.text();
      if (message === null) expect(sent, what).toBe('');
      else expect(sent, what).toContain(`event: next\ndata: {"errors":[{"message":${JSON.stringify(message)},"extensions":{"code":"BAD_USER_INPUT"`);
    }
    // A batch's progress: its snapshot is the stream's first event, from the params the body brought.
    const { batch } = await createTransitions(withoutJobs(app.segue), account.id, { generate: true, transitions: transitionInputs(2) });
    const batchId = encodeId('Batch', batch!.id);
    const seen: IncomingMessage[] = [];
    const onRequest = (req: IncomingMessage) => void seen.push(req);
    app.server.prependListener('request', onRequest);
    const params = { query: 'subscription($id: ID!) { batchProgress(id: $id) { id total } }', variables: { id: batchId }, operationName: null };
    try {
      // Both media types Yoga reads as JSON.
      for (const contentType of ['application/json; charset=utf-8', 'application/graphql+json']) {
        // A stream that never brings its snapshot fails the test rather than holding it.
        const controller = new AbortController();
        const bound = setTimeout(() => controller.abort(), 10_000);
        try {
          // With graphql-sse's token (a mode Yoga does not have), Segue leaves the subscription to
          // Yoga (src/http/sse-subscriptions.ts), which serves it as it would without.
          const stream = await fetch(app.graphqlUrl, {
            method: 'POST',
            headers: { ...headers(contentType), 'x-graphql-event-stream-token': 'any' },
            body: JSON.stringify(params),
            signal: controller.signal,
          });
          expect(stream.status, contentType).toBe(200);
          expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
          const reader = stream.body!.getReader();
          let text = '';
          const frame = /event: next\ndata: (.*)\n\n/;
          while (!frame.test(text)) {
            const { done, value } = await reader.read();
            if (done) break;
            text += new TextDecoder().decode(value);
          }
          expect(text, contentType).toMatch(frame);
          expect(JSON.parse(frame.exec(text)![1]!), contentType).toEqual({ data: { batchProgress: { id: batchId, total: 2 } } });
          // The stream is up: the connection holds the parsed params, not a stream of the body.
          const body = (seen.at(-1) as IncomingMessage & { body?: unknown }).body;
          expect(body, contentType).not.toBeInstanceOf(Readable);
          expect(body, contentType).toEqual(params);
        } finally {
          clearTimeout(bound);
          controller.abort();
        }
      }
    } finally {
      app.server.off('request', onRequest);
    }
  });
});
