import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codes, createTestAccount, gql, startTestApp, type TestAccount, type TestApp } from './helpers/app.ts';
import { transitionInput, transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions } from './helpers/operations.ts';

let app: TestApp;
let account: TestAccount;
const rows = () => app.segue.db.transition.count({ where: { accountId: account.id } });
const batches = () => app.segue.db.batch.count({ where: { accountId: account.id } });

beforeAll(async () => {
  app = await startTestApp();
  account = await createTestAccount(app.segue);
});
afterAll(() => app.close());

describe('createTransitions', () => {
  it('creates one transition as a DRAFT with the documented defaults', async () => {
    const input = transitionInput();
    const res = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: [input] } });
    expect(res.errors).toBeUndefined();
    const [t] = res.data!.createTransitions.transitions;
    expect(t).toMatchObject({
      status: 'DRAFT',
      frontImageUrl: input.frontImageUrl,
      tailImageUrl: input.tailImageUrl,
      prompt: input.prompt,
      transitionType: 'morph',
      durationSeconds: 5,
      enableSubtitles: false,
      negativePrompt: null,
      videoUrl: null,
      attempts: 0,
      error: null,
    });
    expect(res.data!.createTransitions.batch).toBeNull();
    const row = await app.segue.db.transition.findFirstOrThrow({ where: { accountId: account.id, prompt: input.prompt } });
    expect(row.status).toBe('DRAFT');
  });

  it('creates 100 transitions in one call, returned in the order given', async () => {
    const before = await rows();
    const inputs = transitionInputs(100, { durationSeconds: 10, negativePrompt: 'blur' });
    const res = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: inputs } });
    expect(res.errors).toBeUndefined();
    const created = res.data!.createTransitions.transitions;
    expect(created.map((t) => t.prompt)).toEqual(inputs.map((i) => i.prompt));
    expect(created.every((t) => t.durationSeconds === 10 && t.negativePrompt === 'blur')).toBe(true);
    expect(await rows()).toBe(before + 100);
  });

  it('with generate: true starts one batch whose items are all QUEUED', async () => {
    const res = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: transitionInputs(3), generate: true },
    });
    expect(res.errors).toBeUndefined();
    const { transitions, batch } = res.data!.createTransitions;
    expect(transitions.map((t) => t.status)).toEqual(['QUEUED', 'QUEUED', 'QUEUED']);
    expect(batch).toMatchObject({ status: 'QUEUED', total: 3, queued: 3, running: 0, completed: 0, failed: 0, canceled: 0 });
  });

  const bad: Array<[string, () => unknown[], string]> = [
    ['101 items', () => transitionInputs(101), 'transitions'],
    ['no items', () => [], 'transitions'],
    ['a non-http URL', () => [transitionInput(), transitionInput({ tailImageUrl: 'ftp://example.com/x.png' })], 'transitions.1.tailImageUrl'],
    ['a URL that is not one', () => [transitionInput({ frontImageUrl: 'not a url' })], 'transitions.0.frontImageUrl'],
    ['duration 7', () => [transitionInput({ durationSeconds: 7 })], 'transitions.0.durationSeconds'],
    ['an empty prompt', () => [transitionInput({ prompt: '' })], 'transitions.0.prompt'],
    ['a blank prompt', () => [transitionInput({ prompt: '   ' })], 'transitions.0.prompt'],
    ['a prompt over 2500 characters', () => [transitionInput({ prompt: 'x'.repeat(2501) })], 'transitions.0.prompt'],
    ['a missing field', () => [transitionInput(), { frontImageUrl: 'https://a.example/x.png', tailImageUrl: 'https://a.example/y.png' }], 'transitions.1.prompt'],
    ['a wrongly typed field', () => [transitionInput({ durationSeconds: 'five' })], 'transitions.0.durationSeconds'],
    ['an unknown field', () => [transitionInput({ colour: 'red' })], 'transitions.0.colour'],
    ['subtitles enabled without text', () => [transitionInput({ enableSubtitles: true })], 'transitions.0.subtitles'],
  ];

  it.each(bad)('rejects %s with BAD_USER_INPUT naming the field, and creates nothing', async (_name, items, field) => {
    const [before, batchesBefore] = [await rows(), await batches()];
    const res = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: items() as never, generate: true },
    });
    expect(codes(res)).toEqual(['BAD_USER_INPUT']);
    expect(res.errors![0]!.extensions!.fields).toContain(field);
    expect(res.errors![0]!.message).not.toMatch(/at .*\.ts:\d+|prisma|SELECT|INSERT/i);
    expect(await rows()).toBe(before);
    expect(await batches()).toBe(batchesBefore);
  });

  it('reports every failing field of a call at once', async () => {
    const res = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: {
        transitions: [transitionInput({ prompt: '' }), transitionInput(), transitionInput({ frontImageUrl: 'javascript:alert(1)', durationSeconds: 3 })],
      },
    });
    expect(codes(res)).toEqual(['BAD_USER_INPUT']);
    expect(res.errors![0]!.extensions!.fields).toEqual(
      expect.arrayContaining(['transitions.0.prompt', 'transitions.2.frontImageUrl', 'transitions.2.durationSeconds']),
    );
  });
});
