import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codes, createTestAccount, gql, startTestApp, type TestAccount, type TestApp } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions, GenerateBatch } from './helpers/operations.ts';
import { sweepIdempotencyKeys } from '../src/domain/idempotency.ts';

let app: TestApp;
let account: TestAccount;
const counts = async () => ({
  transitions: await app.segue.db.transition.count({ where: { accountId: account.id } }),
  batches: await app.segue.db.batch.count({ where: { accountId: account.id } }),
  items: await app.segue.db.batchItem.count({ where: { batch: { accountId: account.id } } }),
});

beforeAll(async () => {
  app = await startTestApp();
  account = await createTestAccount(app.segue);
});
afterAll(() => app.close());

describe('idempotencyKey', () => {
  it('the same createTransitions twice returns the same batch and creates nothing new', async () => {
    const input = { transitions: transitionInputs(3), generate: true, idempotencyKey: 'upload-42' };
    const first = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input });
    const after = await counts();
    const second = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input });
    expect(second.errors).toBeUndefined();
    expect(second.data!.createTransitions.batch!.id).toBe(first.data!.createTransitions.batch!.id);
    expect(second.data!.createTransitions.transitions.map((t) => t.id)).toEqual(
      first.data!.createTransitions.transitions.map((t) => t.id),
    );
    expect(await counts()).toEqual(after);
  });

  it('also makes a create without generate idempotent', async () => {
    const input = { transitions: transitionInputs(2), idempotencyKey: 'drafts-1' };
    const first = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input });
    const after = await counts();
    const second = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input });
    expect(second.data!.createTransitions.transitions.map((t) => t.id)).toEqual(
      first.data!.createTransitions.transitions.map((t) => t.id),
    );
    expect(second.data!.createTransitions.batch).toBeNull();
    expect(await counts()).toEqual(after);
  });

  it('concurrent requests with one key create one batch', async () => {
    const input = { transitions: transitionInputs(5), generate: true, idempotencyKey: 'burst' };
    const before = await counts();
    const results = await Promise.all(
      Array.from({ length: 8 }, () => gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input })),
    );
    expect(results.flatMap((r) => r.errors ?? [])).toEqual([]);
    expect(new Set(results.map((r) => r.data!.createTransitions.batch!.id)).size).toBe(1);
    expect(await counts()).toEqual({
      transitions: before.transitions + 5,
      batches: before.batches + 1,
      items: before.items + 5,
    });
  });

  it('the same key with a different request is a CONFLICT and changes nothing', async () => {
    await gql(app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: transitionInputs(1), generate: true, idempotencyKey: 'reused' },
    });
    const before = await counts();
    const res = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: transitionInputs(1), generate: true, idempotencyKey: 'reused' },
    });
    expect(codes(res)).toEqual(['CONFLICT']);
    expect(await counts()).toEqual(before);
  });

  it('keys belong to one account: another account may use the same key', async () => {
    const other = await createTestAccount(app.segue);
    const input = { transitions: transitionInputs(1), generate: true, idempotencyKey: 'upload-42' };
    const res = await gql(app.graphqlUrl, other.apiKey, CreateTransitions, { input });
    expect(res.errors).toBeUndefined();
    expect(res.data!.createTransitions.batch!.total).toBe(1);
  });

  it('the same generateBatch twice returns the same batch', async () => {
    const created = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: transitionInputs(2) },
    });
    const transitionIds = created.data!.createTransitions.transitions.map((t) => t.id);
    const first = await gql(app.graphqlUrl, account.apiKey, GenerateBatch, {
      input: { transitionIds, idempotencyKey: 'gen-1' },
    });
    const after = await counts();
    const second = await gql(app.graphqlUrl, account.apiKey, GenerateBatch, {
      input: { transitionIds, idempotencyKey: 'gen-1' },
    });
    expect(second.errors).toBeUndefined();
    expect(second.data!.generateBatch.batch.id).toBe(first.data!.generateBatch.batch.id);
    expect(await counts()).toEqual(after);
  });

  it('a key expires after IDEMPOTENCY_TTL_HOURS: the sweep deletes it (and only it), and the same key then makes a new batch', async () => {
    const input = { transitions: transitionInputs(1), idempotencyKey: 'expires-1' };
    const first = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input });
    const fresh = { transitions: transitionInputs(1), idempotencyKey: 'fresh-1' };
    await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input: fresh });
    // Made a day and a minute ago, against a TTL of a day.
    await app.segue.db.idempotencyKey.update({
      where: { accountId_key: { accountId: account.id, key: 'expires-1' } },
      data: { createdAt: new Date(Date.now() - 86_460_000) },
    });
    expect(await sweepIdempotencyKeys(app.segue.db, 86_400_000, 1)).toBe(1);
    const keys = await app.segue.db.idempotencyKey.findMany({ where: { accountId: account.id, key: { in: ['expires-1', 'fresh-1'] } } });
    expect(keys.map((k) => k.key)).toEqual(['fresh-1']);
    const again = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input });
    expect(again.data!.createTransitions.transitions[0]!.id).not.toBe(first.data!.createTransitions.transitions[0]!.id);
  });
});
