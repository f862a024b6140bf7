import type { ConsoleBatchFragment, ConsoleTransitionFragment } from '../../../src/generated/gql/graphql';

/** A batch as the console knows it: the query's answer, then every newer update. */
export interface LiveBatch {
  batch: ConsoleBatchFragment | null;
  /** Transition ids in the order they were given. */
  order: string[];
  transitions: Record<string, ConsoleTransitionFragment>;
}

export type LiveBatchAction =
  | { type: 'reset' }
  | { type: 'loaded'; batch: ConsoleBatchFragment; transitions: ConsoleTransitionFragment[] }
  /** Read again because transitions were deleted: only those the batch still holds stay. */
  | { type: 'reloaded'; batch: ConsoleBatchFragment; transitions: ConsoleTransitionFragment[] }
  | { type: 'transition'; transition: ConsoleTransitionFragment }
  | { type: 'batch'; batch: ConsoleBatchFragment };

export const emptyLiveBatch: LiveBatch = { batch: null, order: [], transitions: {} };

/**
 * Updates reach us from the query, each subscription's snapshot, its changes and our own
 * mutations, in any interleaving; `version` grows with every change of a transition, so only a
 * newer version replaces what we have.
 */
function withTransition(state: LiveBatch, transition: ConsoleTransitionFragment): LiveBatch {
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
    case 'reloaded': {
      const kept = new Set(action.transitions.map((t) => t.id));
      const known = Object.fromEntries(Object.entries(state.transitions).filter(([id]) => kept.has(id)));
      const merged = action.transitions.reduce<LiveBatch>((s, t) => withTransition(s, t), { batch: action.batch, order: [], transitions: known });
      return { ...merged, order: action.transitions.map((t) => t.id) };
    }
    case 'transition':
      return withTransition(state, action.transition);
    case 'batch':
      // Batch events carry no version; they come in order on one stream, so the latest wins.
      return { ...state, batch: action.batch };
  }
}
