import { describe, expect, it } from 'vitest';
import { estimate, type OpenRow } from '../src/domain/eta.ts';
import { graphql } from '../src/generated/gql/index.ts';
import { gql } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions } from './helpers/operations.ts';
import { startPipeline } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

const Estimates = graphql(`
  query Estimates($id: ID!) {
    batch(id: $id) {
      status
      estimatedCompletionAt
      transitions(first: 50) { edges { node { id status estimatedCompletionAt completedAt } } }
    }
  }
`);

// Polled while waiting: no estimates asked, so the estimates read after the first completions are
// computed from them (a process recomputes at most once a second).
const Progress = graphql(`
  query EstimatesProgress($id: ID!) {
    batch(id: $id) { status completed }
  }
`);

const row = (id: string, status: OpenRow['status'], extra: Partial<OpenRow> = {}): OpenRow => ({
  id,
  batchId: 'b',
  status,
  durationSeconds: 5,
  queuedAt: new Date(0),
  submittedAt: null,
  startedAt: null,
  queuePosition: null,
  ...extra,
});

describe('completion estimates', () => {
  it('play the work out on the slots: running ones end at start + run time, queued ones take the earliest free slot', () => {
    const now = 100_000;
    const open = [
      row('a', 'IN_PROGRESS', { startedAt: new Date(now - 4_000) }),
      row('b', 'IN_PROGRESS', { startedAt: new Date(now - 1_000) }),
      row('c', 'QUEUED', { queuedAt: new Date(1) }),
      row('d', 'QUEUED', { queuedAt: new Date(2) }),
      row('e', 'QUEUED', { queuedAt: new Date(3) }),
    ];
    const { transitions, batches } = estimate(open, { now, slots: 2, times: () => ({ run: 10_000, turnaround: 10_000 }) });
    expect(transitions.get('a')!.getTime()).toBe(now + 6_000);
    expect(transitions.get('b')!.getTime()).toBe(now + 9_000);
    // c takes a's slot, d b's, e c's.
    expect(transitions.get('c')!.getTime()).toBe(now + 16_000);
    expect(transitions.get('d')!.getTime()).toBe(now + 19_000);
    expect(transitions.get('e')!.getTime()).toBe(now + 26_000);
    expect(batches.get('b')!.getTime()).toBe(now + 26_000);
  });

  it('with a steady fal, the estimates of queued and running transitions, and of the batch, land within 20% of the real completion', { timeout: 60_000 }, async () => {
    const p = await startPipeline({ emulator: { latencyMs: 1_500 }, env: { FAL_CONCURRENCY: '3' }, inlineWorkers: 1 });
    try {
      const account = await p.account();
      const created = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
        input: { generate: true, transitions: transitionInputs(12) },
      });
      const batchId = created.data!.createTransitions.batch!.id;
      // A few have completed: Segue has seen how long a generation takes.
      await until(async () => {
        const now = await gql(p.app.graphqlUrl, account.apiKey, Progress, { id: batchId });
        return now.data!.batch!.completed >= 3;
      }, { intervalMs: 50, what: 'the first completions' });
      const asOf = Date.now();
      const estimated = (await gql(p.app.graphqlUrl, account.apiKey, Estimates, { id: batchId })).data!.batch!;
      const open = estimated.transitions.edges.map((e) => e.node).filter((t) => t.status !== 'COMPLETED');
      expect(open.length).toBeGreaterThanOrEqual(6);
      expect(open.some((t) => t.status === 'QUEUED')).toBe(true);
      expect(estimated.estimatedCompletionAt).not.toBeNull();

      await until(async () => (await gql(p.app.graphqlUrl, account.apiKey, Progress, { id: batchId })).data!.batch!.status === 'COMPLETED', {
        timeoutMs: 30_000,
        what: 'the batch to complete',
      });
      const done = (await gql(p.app.graphqlUrl, account.apiKey, Estimates, { id: batchId })).data!.batch!;
      const completedAt = new Map(done.transitions.edges.map((e) => [e.node.id, Date.parse(e.node.completedAt!)]));
      const within20 = (eta: string, actual: number) => Math.abs(Date.parse(eta) - actual) <= 0.2 * (actual - asOf);
      for (const t of open) {
        expect(t.estimatedCompletionAt, `${t.status} ${t.id}`).not.toBeNull();
        expect(within20(t.estimatedCompletionAt!, completedAt.get(t.id)!), `${t.status}: estimated ${t.estimatedCompletionAt}, done ${new Date(completedAt.get(t.id)!).toISOString()}`).toBe(true);
      }
      expect(within20(estimated.estimatedCompletionAt!, Math.max(...completedAt.values()))).toBe(true);
      // Ended: nothing to estimate.
      expect(done.estimatedCompletionAt).toBeNull();
      expect(done.transitions.edges.every((e) => e.node.estimatedCompletionAt === null)).toBe(true);
    } finally {
      await p.close();
    }
  });
});
