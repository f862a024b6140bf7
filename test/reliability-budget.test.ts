import { afterAll, describe, expect, it } from 'vitest';
import { setBudget } from '../src/domain/accounts.ts';
import { cancelBatch, createAndGenerate } from '../src/domain/generation.ts';
import { createTransitions } from '../src/domain/transitions.ts';
import { graphql } from '../src/generated/gql/index.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { codes, gql, type TestAccount } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { freePort, tsx, type Child } from './helpers/process.ts';
import { until } from './helpers/wait.ts';

/**
 * A budget holds under concurrency: each submit is one atomic reservation in PostgreSQL (spent +
 * in flight + uncertain + this one), whichever API process queued the work and whichever worker
 * claims it. Budget for two videos: at most two submissions, and spend equals what fal took.
 */
const Retry = graphql(`mutation BudgetRetry($id: ID!) { retryTransition(id: $id) { id status } }`);
const Generate = graphql(`mutation BudgetGenerate($input: GenerateBatchInput!) { generateBatch(input: $input) { batch { id } } }`);
const Spend = graphql(`query BudgetSpend { viewer { spend { spentUsd reservedUsd budgetUsd } } }`);

const PRICE_5S = 0.49;
let p: Pipeline | undefined;
const apis: Child[] = [];
// Its workers' reconcilers would take up the next test's queued work (one database): stop them
// as soon as the test that started them ends.
const stopFirst = async () => {
  await Promise.all(apis.splice(0).map((a) => a.stop('SIGKILL')));
  await p?.close();
  p = undefined;
};
afterAll(stopFirst);

async function startApi(pipeline: Pipeline) {
  const port = await freePort();
  const child = tsx('src/main.ts', ['api'], { ...pipeline.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', LOG_PRETTY: 'false' });
  await child.waitFor(/GraphiQL at/, 30_000);
  apis.push(child);
  return `http://127.0.0.1:${port}/graphql`;
}

/** fal's submissions for an account's transitions. */
async function submittedFor(pipeline: Pipeline, account: TestAccount) {
  const prompts = new Set((await pipeline.app.segue.db.transition.findMany({ where: { accountId: account.id }, select: { prompt: true } })).map((t) => t.prompt));
  return pipeline.emulator.requests().filter((r) => prompts.has((r.input as { prompt: string }).prompt)).length;
}

describe('a budget for two videos', () => {
  it('10 concurrent retryTransition / generateBatch calls on two API processes, two workers: at most two fal submissions, spend equal to them', { timeout: 120_000 }, async () => {
    p = await startPipeline({ emulator: { latencyMs: 300 }, env: { FAL_CONCURRENCY: '10', RATE_LIMIT_MUTATIONS_PER_MINUTE: '0' } });
    const [one, two] = [await startApi(p), await startApi(p)];
    const segue = p.app.segue;

    // Account A: five transitions canceled before any worker took them (nothing spent), five drafts.
    const a = await p.account();
    const earlier = await createAndGenerate(segue, a.id, { transitions: transitionInputs(5) });
    await cancelBatch(segue, a.id, earlier.batch!.id);
    const drafts = await createTransitions(segue, a.id, { transitions: transitionInputs(5) });
    // Account B: ten transitions queued before its budget was lowered: only the claims can stop them.
    const b = await p.account();
    const queued = await createAndGenerate(segue, b.id, { transitions: transitionInputs(10) });
    for (const account of [a, b]) await setBudget(segue.db, account.id, 2 * PRICE_5S);

    await Promise.all([p.startChildWorker(), p.startChildWorker()]);
    const calls = [
      ...earlier.transitions.map((t, i) => gql(i % 2 ? one : two, a.apiKey, Retry, { id: encodeId('Transition', t.id) })),
      ...drafts.transitions.map((t, i) =>
        gql(i % 2 ? two : one, a.apiKey, Generate, { input: { transitionIds: [encodeId('Transition', t.id)] } }),
      ),
    ];
    const answers = await Promise.all(calls);
    const accepted = answers.filter((r) => !r.errors);
    expect(accepted.length).toBeLessThanOrEqual(2);
    for (const refused of answers.filter((r) => r.errors)) expect(codes(refused)).toEqual(['BUDGET_EXCEEDED']);

    // Everything settles: what was queued either ran or was refused at its claim.
    await until(
      async () => (await segue.db.transition.count({ where: { accountId: { in: [a.id, b.id] }, status: { in: ['QUEUED', 'SUBMITTED', 'IN_PROGRESS'] } } })) === 0,
      { timeoutMs: 60_000, what: 'every queued transition to end' },
    );
    for (const account of [a, b]) {
      const sent = await submittedFor(p, account);
      expect(sent).toBeLessThanOrEqual(2);
      const spend = await gql(one, account.apiKey, Spend);
      expect(spend.data!.viewer.spend.spentUsd).toBeCloseTo(sent * PRICE_5S, 6);
      expect(spend.data!.viewer.spend.reservedUsd).toBe(0);
    }
    // B's ten reached the claims: two were paid for, eight refused there, none sent.
    const bRows = await segue.db.transition.findMany({ where: { batchId: queued.batch!.id } });
    expect(bRows.filter((r) => r.status === 'COMPLETED')).toHaveLength(2);
    expect(bRows.filter((r) => r.status === 'FAILED' && r.errorCode === 'BUDGET_EXCEEDED')).toHaveLength(8);
    expect(p.emulator.counters().duplicateInputs).toBe(0);
    await stopFirst();
  });

  it('a budgeted account is refused when the model’s price is unknown, never treated as free', { timeout: 60_000 }, async () => {
    // The worker starts once the budget is set: the queued transition meets it at its claim.
    const q = await startPipeline({ emulator: { latencyMs: 100 }, env: { FAL_MODEL: 'fal-ai/some-new-model' } });
    try {
      const account = await q.account();
      // Without a budget the price does not matter.
      const free = await gql(q.app.graphqlUrl, account.apiKey, Generate, { input: { transitionIds: [] } });
      expect(codes(free)).toEqual(['BAD_USER_INPUT']);
      const queued = await createAndGenerate(q.app.segue, account.id, { transitions: transitionInputs(1) });
      await setBudget(q.app.segue.db, account.id, 100);
      // Refused at the API ...
      const drafts = await createTransitions(q.app.segue, account.id, { transitions: transitionInputs(1) });
      const refused = await gql(q.app.graphqlUrl, account.apiKey, Generate, {
        input: { transitionIds: [encodeId('Transition', drafts.transitions[0]!.id)] },
      });
      expect(codes(refused)).toEqual(['BUDGET_EXCEEDED']);
      expect(refused.errors![0]!.extensions).toMatchObject({ reason: 'PRICE_UNKNOWN' });
      expect(refused.errors![0]!.message).toMatch(/FAL_PRICE_PER_SECOND/);
      // ... and at the claim, for work queued before the budget was set.
      await q.startInlineWorker();
      const [row] = await q.settled(queued.batch!.id, 30_000);
      expect(row).toMatchObject({ status: 'FAILED', errorCode: 'BUDGET_EXCEEDED', attempts: 0 });
      expect(row!.errorMessage).toMatch(/price .* unknown/);
      expect(q.emulator.counters().submitted).toBe(0);
    } finally {
      await q.close();
    }
  });
});
