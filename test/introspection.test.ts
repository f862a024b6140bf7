import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestAccount, startTestApp, type TestAccount, type TestApp } from './helpers/app.ts';
import { wsClient } from './helpers/subscribe.ts';

/**
 * Who may introspect: anyone with INTROSPECTION=true (the default outside production, see
 * auth.test.ts); with INTROSPECTION=false, callers with a valid key while GraphiQL is on (its docs
 * and autocompletion need the schema), and nobody once GraphiQL is off too.
 */
let withGraphiQL: TestApp;
let closed: TestApp;
let account: TestAccount;
beforeAll(async () => {
  [withGraphiQL, closed] = await Promise.all([
    startTestApp({ INTROSPECTION: 'false', GRAPHIQL: 'true' }),
    startTestApp({ INTROSPECTION: 'false', GRAPHIQL: 'false' }),
  ]);
  account = await createTestAccount(withGraphiQL.segue);
});
afterAll(async () => {
  await withGraphiQL?.close();
  await closed?.close();
});

type Body = { data?: Record<string, unknown> | null; errors?: Array<{ message: string; extensions?: { code?: string } }> };
const post = async (app: TestApp, query: string, apiKey: string | null): Promise<Body> => {
  const response = await fetch(app.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
    body: JSON.stringify({ query }),
  });
  return (await response.json()) as Body;
};

const SCHEMA = '{ __schema { queryType { name } subscriptionType { name } } }';
const SMUGGLED = [
  SCHEMA,
  '{ __type(name: "Transition") { fields { name } } }',
  'query { ...Q } fragment Q on Query { nested: __schema { types { name } } }',
  'query { ... on Query { __type(name: "Query") { name } } }',
];

describe('introspection with INTROSPECTION=false', () => {
  it('serves the schema to a caller with a valid key while GraphiQL is on, over HTTP and WebSocket', async () => {
    expect(await post(withGraphiQL, SCHEMA, account.apiKey)).toEqual({
      data: { __schema: { queryType: { name: 'Query' }, subscriptionType: { name: 'Subscription' } } },
    });
    const client = wsClient(withGraphiQL.graphqlUrl, account.apiKey);
    try {
      const result = await new Promise((resolve, reject) => {
        client.subscribe({ query: '{ __type(name: "TransitionStatus") { enumValues { name } } }' }, { next: resolve, error: reject, complete: () => undefined });
      });
      expect(result).toMatchObject({ data: { __type: { enumValues: expect.arrayContaining([{ name: 'COMPLETED' }]) } } });
    } finally {
      await client.dispose();
    }
  });

  it('refuses anonymous callers and wrong keys however the query is written, with BAD_USER_INPUT and how to send a key', async () => {
    for (const query of SMUGGLED) {
      for (const key of [null, 'sg_not-a-real-key']) {
        const body = await post(withGraphiQL, query, key);
        expect(body.data ?? null, query).toBeNull();
        expect(body.errors, query).toHaveLength(1);
        expect(body.errors![0]!.extensions!.code).toBe('BAD_USER_INPUT');
        expect(body.errors![0]!.message).toMatch(/introspection needs an API key.*Authorization/i);
      }
    }
    // __typename is not introspection: anonymous callers still get it.
    expect(await post(withGraphiQL, '{ __typename }', null)).toEqual({ data: { __typename: 'Query' } });
  });

  it('refuses everyone, keys included, once GraphiQL is off too (GRAPHIQL=false)', async () => {
    const owner = await createTestAccount(closed.segue);
    for (const query of SMUGGLED) {
      const body = await post(closed, query, owner.apiKey);
      expect(body.data ?? null, query).toBeNull();
      expect(body.errors![0]!.extensions!.code, query).toBe('BAD_USER_INPUT');
      expect(body.errors![0]!.message, query).toMatch(/introspection has been disabled/i);
    }
  });
});
