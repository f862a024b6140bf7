import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codes, createTestAccount, gql, startTestApp, type TestAccount, type TestApp } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { rootFieldOperations } from './helpers/root-fields.ts';
import {
  CreateTransitions,
  GenerateBatch,
  GetBatch,
  GetNode,
  GetTransition,
  ListTransitions,
  Viewer,
} from './helpers/operations.ts';

let app: TestApp;
let alice: TestAccount;
let bob: TestAccount;
let aliceTransitionIds: string[];
let aliceBatchId: string;

beforeAll(async () => {
  app = await startTestApp();
  alice = await createTestAccount(app.segue);
  bob = await createTestAccount(app.segue);
  const res = await gql(app.graphqlUrl, alice.apiKey, CreateTransitions, {
    input: { transitions: transitionInputs(2), generate: true },
  });
  aliceTransitionIds = res.data!.createTransitions.transitions.map((t) => t.id);
  aliceBatchId = res.data!.createTransitions.batch!.id;
  // One more of Alice's, idle, so Bob's generateBatch would be allowed if it were his.
  const idle = await gql(app.graphqlUrl, alice.apiKey, CreateTransitions, { input: { transitions: transitionInputs(1) } });
  aliceTransitionIds.push(idle.data!.createTransitions.transitions[0]!.id);
});
afterAll(() => app.close());

const rootFields = rootFieldOperations(['Query', 'Mutation']);

describe('authentication', () => {
  it.each(rootFields)('%s answers UNAUTHENTICATED without an API key', async (_name, query) => {
    const response = await fetch(app.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query }),
    });
    const body = (await response.json()) as { errors?: Array<{ extensions?: { code?: string } }>; data?: unknown };
    expect(body.errors?.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
  });

  it('refuses a wrong, malformed or non-Bearer key', async () => {
    for (const header of ['Bearer sg_not-a-real-key', 'Bearer ', alice.apiKey, `Basic ${alice.apiKey}`]) {
      const response = await fetch(app.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: header },
        body: JSON.stringify({ query: '{ viewer { id } }' }),
      });
      const body = (await response.json()) as { errors?: Array<{ extensions?: { code?: string } }> };
      expect(body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
  });

  it('still lets anyone read the schema itself', async () => {
    const response = await fetch(app.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __schema { mutationType { name } } __typename }' }),
    });
    expect(await response.json()).toEqual({ data: { __schema: { mutationType: { name: 'Mutation' } }, __typename: 'Query' } });
  });

  it('answers viewer with the calling account', async () => {
    const res = await gql(app.graphqlUrl, alice.apiKey, Viewer);
    expect(res.data!.viewer.name).toMatch(/^test-/);
    const node = await gql(app.graphqlUrl, alice.apiKey, GetNode, { id: res.data!.viewer.id });
    expect(node.data!.node).toEqual({ id: res.data!.viewer.id, __typename: 'Account' });
    const asBob = await gql(app.graphqlUrl, bob.apiKey, GetNode, { id: res.data!.viewer.id });
    expect(asBob.data!.node).toBeNull();
  });
});

describe("one account cannot see another's data", () => {
  it("reading another account's transition is NOT_FOUND, exactly like a missing one", async () => {
    const theirs = await gql(app.graphqlUrl, bob.apiKey, GetTransition, { id: aliceTransitionIds[0]! });
    const missing = await gql(app.graphqlUrl, bob.apiKey, GetTransition, {
      id: 'VHJhbnNpdGlvbjowMDAwMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDA',
    });
    expect(codes(theirs)).toEqual(['NOT_FOUND']);
    expect(theirs.errors![0]!.message).toBe(missing.errors![0]!.message);
    const own = await gql(app.graphqlUrl, alice.apiKey, GetTransition, { id: aliceTransitionIds[0]! });
    expect(own.data!.transition.id).toBe(aliceTransitionIds[0]);
  });

  it("node(id) gives null for another account's transition or batch", async () => {
    for (const id of [aliceTransitionIds[0]!, aliceBatchId]) {
      const res = await gql(app.graphqlUrl, bob.apiKey, GetNode, { id });
      expect(res.errors).toBeUndefined();
      expect(res.data!.node).toBeNull();
    }
  });

  it("listing never includes another account's transitions", async () => {
    const res = await gql(app.graphqlUrl, bob.apiKey, ListTransitions, { first: 100 });
    const ids = res.data!.transitions.edges.map((e) => e.node.id);
    expect(ids.filter((id) => aliceTransitionIds.includes(id))).toEqual([]);
    const filtered = await gql(app.graphqlUrl, bob.apiKey, ListTransitions, { first: 10, batchId: aliceBatchId });
    expect(codes(filtered)).toEqual(['NOT_FOUND']);
  });

  it("reading another account's batch is NOT_FOUND", async () => {
    const res = await gql(app.graphqlUrl, bob.apiKey, GetBatch, { id: aliceBatchId });
    expect(codes(res)).toEqual(['NOT_FOUND']);
  });

  it("batching another account's transitions is NOT_FOUND and changes nothing", async () => {
    const before = await app.segue.db.batch.count();
    const res = await gql(app.graphqlUrl, bob.apiKey, GenerateBatch, {
      input: { transitionIds: [aliceTransitionIds[2]!] },
    });
    expect(codes(res)).toEqual(['NOT_FOUND']);
    expect(await app.segue.db.batch.count()).toBe(before);
    const row = await app.segue.db.transition.findFirstOrThrow({ where: { accountId: alice.id, status: 'DRAFT' } });
    expect(row.run).toBe(0);
  });
});
