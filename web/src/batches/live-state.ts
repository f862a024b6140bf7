import type { ConsoleBatchFragment, ConsoleTransitionFragment } from '../../../src/generated/gql/graphql.ts';

/** A batch as the console knows it: the query's answer, then every newer update. */
export interface LiveBatch {
  batch: ConsoleBatchFragment | null;
  /** Transition ids in the order they were given. */
  order: string[];
  transitions: Record<string, ConsoleTransitionFragment>;
  /** Transitions deleted while shown: an event of theirs still on its way does not bring them back (ids are never reused). */
  gone: ReadonlySet<string>;
}

export type LiveBatchAction =
  | { type: 'reset' }
  | { type: 'loaded'; batch: ConsoleBatchFragment; transitions: ConsoleTransitionFragment[] }
  /** The batch's transitions as read again after deletions: only those stay. */
  | { type: 'kept'; ids: string[] }
  | { type: 'transition'; transition: ConsoleTransitionFragment }
  | { type: 'batch'; batch: ConsoleBatchFragment };

export const emptyLiveBatch: LiveBatch = { batch: null, order: [], transitions: {}, gone: new Set() };

/**
 * Updates reach us from the query, each subscription's snapshot, its changes and our own
 * mutations, in any interleaving; `version` grows with every change of a transition, so only a
 * newer version replaces what we have.
 */
function withTransition(state: LiveBatch, transition: ConsoleTransitionFragment): LiveBatch {
  if (state.gone.has(transition.id)) return state;
  const known = state.transitions[transition.id];
  if (known && known.version >= transition.version) return state;
  return {
    ...state,
    order: known ? state.order : [...state.order, transition.id],
    transitions: { ...state.transitions, [transition.id]: transition },
  };
}

export function liveBatchReducer(state: LiveBatch, action: LiveBatchAction): LiveBatch {
  switch (action.type) {
    case 'reset':
      return emptyLiveBatch;
    case 'loaded': {
      const loaded = action.transitions.reduce<LiveBatch>((s, t) => withTransition(s, t), { ...state, batch: action.batch });
      // Keep the given order even when a subscription event came first.
      const given = action.transitions.map((t) => t.id);
      return { ...loaded, order: [...given, ...loaded.order.filter((id) => !given.includes(id))] };
    }
    case 'kept': {
      // The rows keep what the streams brought (newer than any query); only the deleted go.
      const kept = new Set(action.ids);
      const dropped = state.order.filter((id) => !kept.has(id));
      if (dropped.length === 0) return state;
      const transitions = { ...state.transitions };
      for (const id of dropped) delete transitions[id];
      return { ...state, order: state.order.filter((id) => kept.has(id)), transitions, gone: new Set([...state.gone, ...dropped]) };
    }
    case 'transition':
      return withTransition(state, action.transition);
    case 'batch':
      // Batch events carry no version; they come in order on one stream, so the latest wins.
      return { ...state, batch: action.batch };
  }
}
