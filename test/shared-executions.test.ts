import { parse, type ExecutionResult } from 'graphql';
import { describe, expect, it } from 'vitest';
import { SharedExecutions } from '../src/graphql/shared-executions.ts';

/**
 * What SharedExecutions joins and what it keys by; the same, end to end over WebSocket, in
 * test/subscription-reads.test.ts ('results shared between subscribers').
 */
const Updated = parse('subscription ($id: ID) { transitionUpdated(id: $id) { id version status batch { id } } }');

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
