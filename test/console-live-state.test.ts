import { describe, expect, it } from 'vitest';
import type { ConsoleBatchFragment, ConsoleTransitionFragment } from '../src/generated/gql/graphql.ts';
import { emptyLiveBatch, liveBatchReducer, type LiveBatch } from '../web/src/batches/live-state.ts';

/** The console's batch state (web/src/batches/live-state.ts), as its page drives it. */
const transition = (id: string, version: number, status = 'QUEUED') => ({ id, version, status }) as unknown as ConsoleTransitionFragment;
const batch = (total: number) => ({ id: 'b', total, completedAt: null }) as unknown as ConsoleBatchFragment;

function loaded(): LiveBatch {
  return liveBatchReducer(emptyLiveBatch, { type: 'loaded', batch: batch(3), transitions: [transition('t1', 1), transition('t2', 1), transition('t3', 1)] });
}

describe('the console batch state after deletions', () => {
  it('keeps only the transitions the batch still holds, in their order, with what the streams brought', () => {
    let state = liveBatchReducer(loaded(), { type: 'transition', transition: transition('t3', 4, 'CANCELED') });
    state = liveBatchReducer(state, { type: 'batch', batch: batch(2) });
    state = liveBatchReducer(state, { type: 'kept', ids: ['t1', 't3'] });
    expect(state.order).toEqual(['t1', 't3']);
    expect(Object.keys(state.transitions).sort()).toEqual(['t1', 't3']);
    // The stream's newer row and batch stay: the read only says which rows remain.
    expect(state.transitions.t3!.version).toBe(4);
    expect(state.batch!.total).toBe(2);
  });

  it('an event of a deleted transition that was still on its way does not bring it back', () => {
    let state = liveBatchReducer(loaded(), { type: 'kept', ids: ['t2', 't3'] });
    state = liveBatchReducer(state, { type: 'transition', transition: transition('t1', 9, 'CANCELED') });
    expect(state.order).toEqual(['t2', 't3']);
    expect(state.transitions.t1).toBeUndefined();
  });

  it('a read that drops nothing changes nothing', () => {
    const before = loaded();
    expect(liveBatchReducer(before, { type: 'kept', ids: ['t1', 't2', 't3'] })).toBe(before);
  });
});
