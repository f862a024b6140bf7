import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setBudget } from '../src/domain/accounts.ts';
import { codes, gql } from './helpers/app.ts';
import { transitionInput, transitionInputs } from './helpers/fixtures.ts';
import { graphql } from '../src/generated/gql/index.ts';
import { CreateTransitions } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { idOf } from '../src/graphql/ids.ts';

const Spend = graphql(`
  query Spend { viewer { spend { spentUsd reservedUsd budgetUsd remainingUsd } } }
`);
const Costs = graphql(`
  mutation Costs($input: CreateTransitionsInput!) {
    createTransitions(input: $input) { transitions { id estimatedCost durationSeconds } batch { id estimatedCost } }
  }
`);

let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({ emulator: { latencyMs: 100 }, env: { FAL_MAX_RETRIES: '2', FAL_RETRY_DELAY_MS: '20' }, inlineWorkers: 1 });
});
afterAll(() => p?.close());

describe('cost', () => {
  it("estimates each transition at Kling v2.1 Pro's price ($0.49 for 5 s, $0.98 for 10 s) and a batch as their sum", async () => {
    const account = await p.account();
    const res = await gql(p.app.graphqlUrl, account.apiKey, Costs, {
      input: { transitions: [transitionInput(), transitionInput({ durationSeconds: 10 })] },
    });
    expect(res.data!.createTransitions.transitions.map((t) => t.estimatedCost)).toEqual([0.49, 0.98]);
    const gen = await gql(p.app.graphqlUrl, account.apiKey, Costs, {
      input: { transitions: [transitionInput(), transitionInput({ durationSeconds: 10 })], generate: true },
    });
    expect(gen.data!.createTransitions.batch!.estimatedCost).toBeCloseTo(1.47, 6);
  });

  it('viewer.spend counts every request fal accepted, retries included', { timeout: 30_000 }, async () => {
    const account = await p.account();
    const flaky = transitionInput({ prompt: `spend ${Date.now()}` });
    p.emulator.inject({ on: 'job', error: 'server', times: 1, promptIncludes: flaky.prompt });
    const res = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: [flaky, transitionInput({ durationSeconds: 10 })], generate: true },
    });
    await p.settled(idOf('Batch', res.data!.createTransitions.batch!.id));
    const spend = await gql(p.app.graphqlUrl, account.apiKey, Spend);
    // 5 s twice (one failed attempt, one success) + 10 s once.
    expect(spend.data!.viewer.spend).toEqual({ spentUsd: 1.96, reservedUsd: 0, budgetUsd: null, remainingUsd: null });
    const ledger = await p.app.segue.db.falRequest.count({ where: { accountId: account.id } });
    expect(ledger).toBe(3);
  });
});

describe('budget', () => {
  it('refuses generation beyond the budget with BUDGET_EXCEEDED and creates nothing; queued work counts', async () => {
    const account = await p.account();
    await setBudget(p.app.segue.db, account.id, 1.0);
    const rows = () => p.app.segue.db.transition.count({ where: { accountId: account.id } });

    const tooMuch = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: transitionInputs(3), generate: true }, // $1.47
    });
    expect(codes(tooMuch)).toEqual(['BUDGET_EXCEEDED']);
    expect(tooMuch.errors![0]!.extensions).toMatchObject({ budgetUsd: 1, requestedUsd: 1.47 });
    expect(await rows()).toBe(0);

    // Drafts cost nothing; two 5 s videos ($0.98) fit.
    const drafts = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: transitionInputs(3) } });
    expect(drafts.errors).toBeUndefined();
    const fits = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: transitionInputs(2), generate: true },
    });
    expect(fits.errors).toBeUndefined();
    // One more: spent or queued $0.98, this $0.49 → over $1.
    const more = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: transitionInputs(1), generate: true },
    });
    expect(codes(more)).toEqual(['BUDGET_EXCEEDED']);
    const spend = await gql(p.app.graphqlUrl, account.apiKey, Spend);
    expect(spend.data!.viewer.spend.budgetUsd).toBe(1);
    expect(spend.data!.viewer.spend.spentUsd + spend.data!.viewer.spend.reservedUsd).toBeCloseTo(0.98, 6);
  });

  it('a retry that would go past the budget is not submitted: the transition fails BUDGET_EXCEEDED', { timeout: 30_000 }, async () => {
    const account = await p.account();
    await setBudget(p.app.segue.db, account.id, 0.5);
    const flaky = transitionInput({ prompt: `budget retry ${Date.now()}` });
    p.emulator.inject({ on: 'job', error: 'server', times: 1, promptIncludes: flaky.prompt });
    const res = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: [flaky], generate: true } });
    const [row] = await p.settled(idOf('Batch', res.data!.createTransitions.batch!.id));
    // The second attempt never reached fal: its claim was refused, so it is not counted as one.
    expect(row).toMatchObject({ status: 'FAILED', errorCode: 'BUDGET_EXCEEDED', attempts: 1 });
    expect(p.emulator.requests().filter((r) => (r.input as { prompt: string }).prompt === flaky.prompt)).toHaveLength(1);
    expect(await p.app.segue.db.falRequest.count({ where: { accountId: account.id } })).toBe(1);
  });
});
