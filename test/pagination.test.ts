import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestAccount, gql, startTestApp, type TestAccount, type TestApp } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions, ListBatches, ListTransitions } from './helpers/operations.ts';

let app: TestApp;
let account: TestAccount;
let newestFirst: string[] = [];
let batchId: string;

beforeAll(async () => {
  app = await startTestApp();
  account = await createTestAccount(app.segue);
  // Three calls, so creation times differ between groups; within a call the order is kept.
  for (const generate of [false, true, false]) {
    const res = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: transitionInputs(4), generate },
    });
    const ids = res.data!.createTransitions.transitions.map((t) => t.id);
    if (generate) batchId = res.data!.createTransitions.batch!.id;
    newestFirst = [...ids.reverse(), ...newestFirst];
  }
});
afterAll(() => app.close());

describe('transitions connection', () => {
  it('lists newest first and pages forward with first/after', async () => {
    const list = (after: string | null) => gql(app.graphqlUrl, account.apiKey, ListTransitions, { first: 5, after });
    const seen: string[] = [];
    let after: string | null = null;
    for (;;) {
      const res: Awaited<ReturnType<typeof list>> = await list(after);
      const page = res.data!.transitions;
      seen.push(...page.edges.map((e) => e.node.id));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor!;
    }
    expect(seen).toEqual(newestFirst);
  });

  it('pages backward with last/before', async () => {
    const res = await gql(app.graphqlUrl, account.apiKey, ListTransitions, { last: 3 });
    expect(res.data!.transitions.edges.map((e) => e.node.id)).toEqual(newestFirst.slice(-3));
    const before = res.data!.transitions.pageInfo.startCursor!;
    const prev = await gql(app.graphqlUrl, account.apiKey, ListTransitions, { last: 2, before });
    expect(prev.data!.transitions.edges.map((e) => e.node.id)).toEqual(newestFirst.slice(-5, -3));
    expect(prev.data!.transitions.pageInfo.hasPreviousPage).toBe(true);
  });

  it('filters by status and by batch', async () => {
    const queued = await gql(app.graphqlUrl, account.apiKey, ListTransitions, { first: 50, status: 'QUEUED' });
    expect(queued.data!.transitions.edges).toHaveLength(4);
    expect(queued.data!.transitions.edges.every((e) => e.node.status === 'QUEUED')).toBe(true);
    const inBatch = await gql(app.graphqlUrl, account.apiKey, ListTransitions, { first: 50, batchId });
    expect(inBatch.data!.transitions.edges.map((e) => e.node.id)).toEqual(newestFirst.slice(4, 8));
    const drafts = await gql(app.graphqlUrl, account.apiKey, ListTransitions, { first: 50, status: 'DRAFT' });
    expect(drafts.data!.transitions.edges).toHaveLength(8);
  });

  it('caps a page at 100', async () => {
    const res = await gql(app.graphqlUrl, account.apiKey, ListTransitions, { first: 1000 });
    expect(res.data!.transitions.edges.length).toBeLessThanOrEqual(100);
  });
});

describe('batches connection', () => {
  it('lists the batches of the caller, newest first', async () => {
    const res = await gql(app.graphqlUrl, account.apiKey, ListBatches, { first: 10 });
    expect(res.data!.batches.edges.map((e) => e.node)).toEqual([{ id: batchId, status: 'QUEUED', total: 4 }]);
  });
});
