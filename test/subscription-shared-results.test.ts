import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { parse, type ExecutionResult } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { changeTransition } from '../src/domain/state-machine.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { SharedExecutions } from '../src/graphql/shared-executions.ts';
import { createTestAccount, gql, startTestApp, type TestApp } from './helpers/app.ts';
import { CreateAccessToken } from './helpers/credential-operations.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { dropQueueKeys } from './helpers/pipeline.ts';
import { subscribe, wsClient } from './helpers/subscribe.ts';
import { until } from './helpers/wait.ts';

/**
 * An event is executed once for every WebSocket subscriber of a process that would get the same
 * result (same query, variables and viewer), and never shared with one that would not: a browser
 * token scoped to one transition must not see the batch that an API key's viewer sees.
 */
const prefix = `sshr${process.pid}`;
let app: TestApp;
beforeAll(async () => {
  app = await startTestApp({ QUEUE_PREFIX: prefix });
});
afterAll(async () => {
  await app?.close();
  await dropQueueKeys(app.segue.config.redis, prefix);
});

const noQueue = () => ({ ...app.segue, generationJobs: { enqueue: async () => undefined, removeWaiting: async () => undefined } as never });

type Shown = { id: string; version: number; status: string; batch: { id: string } | null };
const Updated: TypedDocumentNode<{ transitionUpdated: Shown }, { id: string }> = parse(
  'subscription ($id: ID) { transitionUpdated(id: $id) { id version status batch { id } } }',
);

/** segue_subscription_results_total by execution, from the API's /metrics. */
async function results() {
  const text = await (await fetch(`${app.url}/metrics`)).text();
  const of = (execution: string) => Number(new RegExp(`^segue_subscription_results_total\\{execution="${execution}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { executed: of('executed'), shared: of('shared') };
}

describe('results shared between subscribers', () => {
  it('two API-key viewers of a transition share one execution of each event; browser tokens scoped to it and to its batch each get their own', async () => {
    const account = await createTestAccount(app.segue);
    const { batch, transitions } = await createAndGenerate(noQueue(), account.id, { transitions: transitionInputs(2) });
    const transition = transitions[0]!;
    const id = encodeId('Transition', transition.id);
    const minted = await gql(app.graphqlUrl, account.apiKey, CreateAccessToken, { input: { transitionId: id } });
    expect(minted.errors).toBeUndefined();
    const token = minted.data!.createAccessToken.token;
    const ofBatch = await gql(app.graphqlUrl, account.apiKey, CreateAccessToken, { input: { batchId: encodeId('Batch', batch!.id) } });
    expect(ofBatch.errors).toBeUndefined();

    const credentials = [account.apiKey, account.apiKey, token, ofBatch.data!.createAccessToken.token];
    const clients = credentials.map((credential) => wsClient(app.graphqlUrl, credential));
    try {
      const [keyA, keyB, scoped, batchScoped] = clients.map((client) => subscribe(client, Updated, { id }, (d) => d.transitionUpdated));
      await Promise.all([keyA!.first, keyB!.first, scoped!.first, batchScoped!.first]);
      expect(keyA!.events[0]!.batch).toEqual({ id: encodeId('Batch', batch!.id) });
      expect(scoped!.events[0]!.batch).toBeNull();
      expect(batchScoped!.events[0]!.batch).toEqual({ id: encodeId('Batch', batch!.id) });

      const before = await results();
      const changed = await changeTransition(app.segue, transition, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date() }, { from: ['QUEUED'] });
      expect(changed).not.toBeNull();
      await until(() => [keyA, keyB, scoped, batchScoped].every((s) => s!.events.length >= 2), { what: 'the change, at all four' });
      const after = await results();

      for (const viewer of [keyA, keyB, batchScoped]) expect(viewer!.events[1]).toEqual({ id, version: changed!.version, status: 'SUBMITTED', batch: { id: encodeId('Batch', batch!.id) } });
      expect(scoped!.events[1]).toEqual({ id, version: changed!.version, status: 'SUBMITTED', batch: null });
      // The two key viewers: one execution and one shared result; each token: one of its own
      // (the batch's token sees what the keys see, but it is another viewer: not shared).
      expect({ executed: after.executed - before.executed, shared: after.shared - before.shared }).toEqual({ executed: 3, shared: 1 });
      for (const s of [keyA, keyB, scoped, batchScoped]) s!.stop();
    } finally {
      await Promise.all(clients.map((c) => c.dispose()));
    }
  });

  it('two viewers of a batch share the execution of each batchProgress event', async () => {
    const account = await createTestAccount(app.segue);
    const { batch, transitions } = await createAndGenerate(noQueue(), account.id, { transitions: transitionInputs(3) });
    await app.segue.events.flush();
    const Progress: TypedDocumentNode<{ batchProgress: { id: string; total: number; queued: number; running: number } }, { id: string }> = parse(
      'subscription ($id: ID!) { batchProgress(id: $id) { id total queued running } }',
    );
    const clients = [wsClient(app.graphqlUrl, account.apiKey), wsClient(app.graphqlUrl, account.apiKey)];
    try {
      const viewers = clients.map((client) => subscribe(client, Progress, { id: encodeId('Batch', batch!.id) }, (d) => d.batchProgress));
      await Promise.all(viewers.map((v) => v.first));
      const before = await results();
      await changeTransition(app.segue, transitions[0]!, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date() }, { from: ['QUEUED'] });
      await app.segue.events.flush();
      await until(() => viewers.every((v) => v.events.some((e) => e.running === 1)), { what: 'the new counts, at both' });
      const after = await results();
      for (const v of viewers) expect(v.events.at(-1)).toEqual({ id: encodeId('Batch', batch!.id), total: 3, queued: 2, running: 1 });
      expect(after.shared - before.shared).toBe(after.executed - before.executed);
      expect(after.shared - before.shared).toBeGreaterThan(0);
      for (const v of viewers) v.stop();
    } finally {
      await Promise.all(clients.map((c) => c.dispose()));
    }
  });

  it('a viewer asking for other fields of the same transition, and another account\'s viewer, each execute their own', async () => {
    const accounts = [await createTestAccount(app.segue), await createTestAccount(app.segue)];
    const rows = await Promise.all(accounts.map(async (a) => (await createAndGenerate(noQueue(), a.id, { transitions: transitionInputs(1) })).transitions[0]!));
    const Fewer: TypedDocumentNode<{ transitionUpdated: { id: string; version: number } }, { id: string }> = parse(
      'subscription ($id: ID) { transitionUpdated(id: $id) { id version } }',
    );
    const clients = [wsClient(app.graphqlUrl, accounts[0]!.apiKey), wsClient(app.graphqlUrl, accounts[0]!.apiKey), wsClient(app.graphqlUrl, accounts[1]!.apiKey)];
    try {
      const id = (n: number) => encodeId('Transition', rows[n]!.id);
      const subs = [
        subscribe(clients[0]!, Updated, { id: id(0) }, (d) => d.transitionUpdated),
        subscribe(clients[1]!, Fewer, { id: id(0) }, (d) => d.transitionUpdated),
        subscribe(clients[2]!, Updated, { id: id(1) }, (d) => d.transitionUpdated),
      ];
      await Promise.all(subs.map((s) => s.first));
      const before = await results();
      await Promise.all(rows.map((row) => changeTransition(app.segue, row, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date() }, { from: ['QUEUED'] })));
      await until(() => subs.every((s) => s.events.length >= 2), { what: 'each change' });
      const after = await results();
      expect(subs[1]!.events[1]).toEqual({ id: id(0), version: rows[0]!.version + 1 });
      expect(subs[2]!.events[1]).toMatchObject({ id: id(1), status: 'SUBMITTED' });
      expect({ executed: after.executed - before.executed, shared: after.shared - before.shared }).toEqual({ executed: 3, shared: 0 });
      for (const s of subs) s.stop();
    } finally {
      await Promise.all(clients.map((c) => c.dispose()));
    }
  });
});

describe('SharedExecutions', () => {
  const key = (shared: SharedExecutions, variables: unknown) =>
    shared.keyOf({ document: Updated, operationName: null, variableValues: variables, contextValue: { principal: { kind: 'key', accountId: 'a', keyId: 'k', expiresAt: null } } });

  it('joins an execution of the same event and key in the same turn only; another event, key or turn executes anew', async () => {
    const shared = new SharedExecutions();
    let runs = 0;
    const run = (): Promise<ExecutionResult> => Promise.resolve({ data: { run: ++runs } });
    const event = {};
    const k = key(shared, { id: '1' });
    const first = shared.run(event, k, run);
    expect(shared.run(event, k, run)).toBe(first);
    expect(shared.run({}, k, run)).not.toBe(first);
    expect(shared.run(event, key(shared, { id: '2' }), run)).not.toBe(first);
    expect(runs).toBe(3);
    await new Promise((resolve) => setImmediate(resolve));
    await shared.run(event, k, run);
    expect(runs).toBe(4);
  });

  it('keys by document, variables and viewer (a token by its scope); no principal or unprintable variables: never shared', () => {
    const shared = new SharedExecutions();
    const context = (principal: unknown) => ({ principal }) as never;
    const of = (principal: unknown, variables: unknown = { id: '1' }, document = Updated) =>
      shared.keyOf({ document, variableValues: variables, contextValue: context(principal) });
    const keyViewer = { kind: 'key', accountId: 'a', keyId: 'k', expiresAt: null };
    expect(of(keyViewer)).toBe(of({ ...keyViewer, keyId: 'other key' }));
    expect(of(keyViewer)).not.toBe(of({ ...keyViewer, accountId: 'b' }));
    expect(of(keyViewer)).not.toBe(of(keyViewer, { id: '2' }));
    expect(of(keyViewer)).not.toBe(of(keyViewer, { id: '1' }, parse('subscription ($id: ID) { transitionUpdated(id: $id) { id } }')));
    const token = (scope: object) => ({ kind: 'token', accountId: 'a', keyId: 'k', scope, expiresAt: new Date() });
    expect(of(token({ transitionId: 't' }))).not.toBe(of(keyViewer));
    expect(of(token({ transitionId: 't' }))).not.toBe(of(token({ batchId: 't' })));
    expect(of(token({ transitionId: 't' }))).toBe(of(token({ transitionId: 't' })));
    expect(of(null)).toBeNull();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(of(keyViewer, circular)).toBeNull();
    // Not an object: nothing to key the event by.
    let runs = 0;
    const run = () => Promise.resolve({ data: { run: ++runs } });
    void shared.run('event', of(keyViewer), run);
    void shared.run('event', of(keyViewer), run);
    expect(runs).toBe(2);
  });
});
