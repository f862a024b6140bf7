import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idOf } from '../src/graphql/ids.ts';
import { codes, createTestAccount, gql, startTestApp, type TestAccount, type TestApp } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions, GenerateBatch, GetBatch, GetTransition } from './helpers/operations.ts';

let app: TestApp;
let account: TestAccount;

const drafts = async (n: number) => {
  const res = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: transitionInputs(n) } });
  return res.data!.createTransitions.transitions.map((t) => t.id);
};

beforeAll(async () => {
  app = await startTestApp();
  account = await createTestAccount(app.segue);
});
afterAll(() => app.close());

describe('generateBatch', () => {
  it('queues existing drafts as one batch, keeping the order given', async () => {
    const ids = (await drafts(4)).reverse();
    const res = await gql(app.graphqlUrl, account.apiKey, GenerateBatch, { input: { transitionIds: ids } });
    expect(res.errors).toBeUndefined();
    const batch = res.data!.generateBatch.batch;
    expect(batch).toMatchObject({ status: 'QUEUED', total: 4, queued: 4 });
    expect(batch.transitions.edges.map((e) => e.node.id)).toEqual(ids);
    expect(batch.transitions.edges.every((e) => e.node.status === 'QUEUED')).toBe(true);
    const t = await gql(app.graphqlUrl, account.apiKey, GetTransition, { id: ids[0]! });
    expect(t.data!.transition.batch!.id).toBe(batch.id);
    expect(t.data!.transition.queuedAt).not.toBeNull();
  });

  it('refuses transitions that are already generating with CONFLICT, and changes nothing', async () => {
    const [a, b] = await drafts(2);
    await gql(app.graphqlUrl, account.apiKey, GenerateBatch, { input: { transitionIds: [a!] } });
    const before = await app.segue.db.batch.count({ where: { accountId: account.id } });
    const res = await gql(app.graphqlUrl, account.apiKey, GenerateBatch, { input: { transitionIds: [b!, a!] } });
    expect(codes(res)).toEqual(['CONFLICT']);
    // The busy input is named by its path; raw database ids never reach clients.
    expect(res.errors![0]!.extensions!.fields).toEqual(['transitionIds.1']);
    expect(JSON.stringify(res.errors)).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-/);
    expect(await app.segue.db.batch.count({ where: { accountId: account.id } })).toBe(before);
    const untouched = await gql(app.graphqlUrl, account.apiKey, GetTransition, { id: b! });
    expect(untouched.data!.transition.status).toBe('DRAFT');
  });

  it('generates a finished transition again in a new batch, leaving the old batch as it ended', async () => {
    const [id] = await drafts(1);
    const first = await gql(app.graphqlUrl, account.apiKey, GenerateBatch, { input: { transitionIds: [id!] } });
    // End the first run as the pipeline would (the pipeline issue drives this for real).
    const { batchId, transitionId } = { batchId: first.data!.generateBatch.batch.id, transitionId: id! };
    const uuid = idOf('Transition', transitionId);
    await app.segue.db.transition.update({ where: { id: uuid }, data: { status: 'FAILED', errorCode: 'FAL_VALIDATION' } });
    await app.segue.db.batchItem.updateMany({ where: { transitionId: uuid }, data: { status: 'FAILED' } });

    const again = await gql(app.graphqlUrl, account.apiKey, GenerateBatch, { input: { transitionIds: [transitionId] } });
    expect(again.errors).toBeUndefined();
    expect(again.data!.generateBatch.batch.id).not.toBe(batchId);
    const t = await gql(app.graphqlUrl, account.apiKey, GetTransition, { id: transitionId });
    expect(t.data!.transition).toMatchObject({ status: 'QUEUED', error: null, attempts: 0 });
    const old = await gql(app.graphqlUrl, account.apiKey, GetBatch, { id: batchId });
    expect(old.data!.batch).toMatchObject({ status: 'FAILED', failed: 1, total: 1 });
  });

  it('rejects an empty list, more than 100 ids, duplicates and malformed ids with BAD_USER_INPUT', async () => {
    const ids = await drafts(1);
    const cases: Array<[string[], string]> = [
      [[], 'transitionIds'],
      [Array.from({ length: 101 }, () => ids[0]!), 'transitionIds'],
      [[ids[0]!, ids[0]!], 'transitionIds.1'],
      [[ids[0]!, 'nonsense'], 'transitionIds.1'],
    ];
    for (const [transitionIds, field] of cases) {
      const res = await gql(app.graphqlUrl, account.apiKey, GenerateBatch, { input: { transitionIds } });
      expect(codes(res)).toEqual(['BAD_USER_INPUT']);
      expect(res.errors![0]!.extensions!.fields).toContain(field);
    }
    expect(await app.segue.db.transition.count({ where: { id: { in: [] } } })).toBe(0);
  });

  it("another account's transition is NOT_FOUND, named by its input path, and changes nothing", async () => {
    const [mine] = await drafts(1);
    const other = await createTestAccount(app.segue);
    const theirs = await gql(app.graphqlUrl, other.apiKey, CreateTransitions, { input: { transitions: transitionInputs(1) } });
    const foreign = theirs.data!.createTransitions.transitions[0]!.id;
    const res = await gql(app.graphqlUrl, account.apiKey, GenerateBatch, { input: { transitionIds: [mine!, foreign] } });
    expect(codes(res)).toEqual(['NOT_FOUND']);
    expect(res.errors![0]!.extensions!.fields).toEqual(['transitionIds.1']);
    expect(JSON.stringify(res.errors)).not.toMatch(/[0-9a-f]{8}-[0-9a-f]{4}-/);
    const t = await gql(app.graphqlUrl, account.apiKey, GetTransition, { id: mine! });
    expect(t.data!.transition.status).toBe('DRAFT');
  });

  it("an id of another type is NOT_FOUND", async () => {
    const created = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: transitionInputs(1), generate: true },
    });
    const res = await gql(app.graphqlUrl, account.apiKey, GenerateBatch, {
      input: { transitionIds: [created.data!.createTransitions.batch!.id] },
    });
    expect(codes(res)).toEqual(['NOT_FOUND']);
  });
});
