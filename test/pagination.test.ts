import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { parse } from 'graphql';
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

describe("a batch's transitions connection", () => {
  type Page = { batch: { transitions: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges?: Array<{ cursor: string; node?: { id: string; prompt: string; status: string; error: null; estimatedCost: number } }> } } };
  const page = (selection: string, after: string | null = null) =>
    gql(app.graphqlUrl, account.apiKey, parse(`query ($id: ID!, $after: String) { batch(id: $id) { transitions(first: 3, after: $after) { ${selection} } } }`) as TypedDocumentNode<Page, { id: string; after: string | null }>, { id: batchId, after });

  it('answers pageInfo alone, or cursors alone, without its nodes (they were an INTERNAL error)', async () => {
    const onlyInfo = await page('pageInfo { hasNextPage endCursor }');
    expect(onlyInfo.errors).toBeUndefined();
    expect(onlyInfo.data!.batch.transitions.pageInfo.hasNextPage).toBe(true);
    const onlyCursors = await page('edges { cursor }');
    expect(onlyCursors.errors).toBeUndefined();
    expect(onlyCursors.data!.batch.transitions.edges).toHaveLength(3);
    // The same pages as with their nodes, which still come whole.
    const withNodes = await page('pageInfo { hasNextPage endCursor } edges { cursor node { id prompt status error { code } estimatedCost } }');
    expect(withNodes.data!.batch.transitions.edges!.map((e) => e.cursor)).toEqual(onlyCursors.data!.batch.transitions.edges!.map((e) => e.cursor));
    expect(withNodes.data!.batch.transitions.pageInfo).toEqual(onlyInfo.data!.batch.transitions.pageInfo);
    // Whole rows: the fields made of the row's own columns have them.
    for (const { node } of withNodes.data!.batch.transitions.edges!) expect(node).toMatchObject({ prompt: expect.any(String), status: 'QUEUED', error: null, estimatedCost: expect.any(Number) });
    const rest = await page('pageInfo { hasNextPage } edges { node { id } }', onlyInfo.data!.batch.transitions.pageInfo.endCursor);
    expect(rest.data!.batch.transitions.edges).toHaveLength(1);
    expect(rest.data!.batch.transitions.pageInfo.hasNextPage).toBe(false);
  });
});
