import { batchCounts } from '../domain/batches.ts';
import { getBatch, getTransition } from '../domain/transitions.ts';
import type { Batch, GeneratedTransition, Transition } from '../generated/prisma/client.ts';
import { getGeneratedTransition } from '../domain/combine.ts';
import type { Segue } from '../runtime.ts';
import { LiveFeed, withCleanup } from './live.ts';
import type { BatchProgressEvent, GeneratedTransitionEvent, TransitionEvent } from './publisher.ts';

type StreamDeps = Pick<Segue, 'db' | 'sql' | 'pubsub' | 'topics' | 'config' | 'jobs' | 'changes' | 'logger'>;

/** A batch as the API shows it, with the counts an event brought (no query per subscriber). */
export type BatchWithCounts = Batch & { counts?: BatchProgressEvent['counts'] };

type Message = { kind: 'transition'; event: TransitionEvent } | { kind: 'batch'; event: BatchProgressEvent };

/** The transitions of a batch in its order, each as it is now. */
async function batchTransitions(deps: StreamDeps, batchId: string): Promise<Transition[]> {
  const items = await deps.db.batchItem.findMany({
    where: { batchId },
    orderBy: { position: 'asc' },
    include: { transition: true },
  });
  return items.map((i) => i.transition);
}

/**
 * transitionUpdated: one transition, the transitions of a batch, or all of an account's.
 * Subscribed at Redis first, then the snapshot (one transition, or each of a batch's), then the
 * changes: a client never misses what happened between its query and its subscribe. Versions
 * only go up: an event older than what was already sent is dropped, so each transition's updates
 * arrive in order. A batch stream ends when the batch ends, after its last changes and the
 * posters of its COMPLETED transitions (or POSTER_GRACE_MS without them).
 */
export async function transitionUpdates(
  deps: StreamDeps,
  accountId: string,
  scope: { transitionId?: string | null; batchId?: string | null },
): Promise<AsyncIterableIterator<Transition>> {
  const { topics } = deps;
  const transition = scope.transitionId ? await getTransition(deps, accountId, scope.transitionId) : null;
  const batch = !transition && scope.batchId ? await getBatch(deps, accountId, scope.batchId) : null;
  const triggers = transition
    ? [{ trigger: topics.oneTransition(accountId, transition.id), pattern: true }]
    : batch
      ? [
          { trigger: topics.batchTransitions(accountId, batch.id), pattern: true },
          { trigger: topics.batch(accountId, batch.id), pattern: false },
        ]
      : [{ trigger: topics.accountTransitions(accountId), pattern: true }];
  const feed = await LiveFeed.subscribe<TransitionEvent | BatchProgressEvent>(deps.pubsub, triggers, deps.config.subscriptions.buffer);
  return withCleanup(transitionStream(deps, accountId, feed, transition, batch), () => feed.close());
}

/**
 * How long a batch stream stays open after its batch ended, for the posters of its COMPLETED
 * transitions (made on the media queue right after each video, usually within a second).
 */
export const POSTER_GRACE_MS = 30_000;

const awaitsPoster = (row: Transition) => row.status === 'COMPLETED' && !row.posterUrl;

async function* transitionStream(
  deps: StreamDeps,
  accountId: string,
  feed: LiveFeed<TransitionEvent | BatchProgressEvent>,
  transition: Transition | null,
  batch: Batch | null,
): AsyncGenerator<Transition> {
  const sent = new Map<string, number>();
  const fresh = (row: Transition) => {
    if ((sent.get(row.id) ?? 0) >= row.version) return false;
    sent.set(row.id, row.version);
    return true;
  };
  // Once the batch has ended: the transitions still waiting for their poster; none left, it ends.
  const ending: { posters: Set<string> | null } = { posters: null };
  let grace: NodeJS.Timeout | undefined;
  const batchEnded = (rows: Transition[]) => {
    ending.posters = new Set(rows.filter(awaitsPoster).map((r) => r.id));
    grace = setTimeout(() => feed.close(), POSTER_GRACE_MS);
    return ending.posters.size === 0;
  };
  try {
    if (transition) {
      const now = await getTransition(deps, accountId, transition.id);
      if (fresh(now)) yield now;
    }
    if (batch) {
      const rows = await batchTransitions(deps, batch.id);
      for (const row of rows) if (fresh(row)) yield row;
      const ended = (await deps.db.batch.findUniqueOrThrow({ where: { id: batch.id } })).completedAt;
      if (ended && batchEnded(rows)) return;
    }
    for await (const event of feed) {
      const message: Message = 'transition' in event ? { kind: 'transition', event } : { kind: 'batch', event };
      if (message.kind === 'transition') {
        const row = message.event.transition;
        if (fresh(row)) yield row;
        if (ending.posters && !awaitsPoster(row)) {
          ending.posters.delete(row.id);
          if (ending.posters.size === 0) return;
        }
      } else if (message.event.batch.completedAt && !ending.posters) {
        // The batch ended: send whatever changes have not come through yet, then the posters.
        const rows = await batchTransitions(deps, batch!.id);
        for (const row of rows) if (fresh(row)) yield row;
        if (batchEnded(rows)) return;
      }
    }
  } finally {
    clearTimeout(grace);
    feed.close();
  }
}

/** batchProgress: the batch now, then again with fresh counts on every change; ends with the batch. */
export async function batchProgress(deps: StreamDeps, accountId: string, batchId: string): Promise<AsyncIterableIterator<BatchWithCounts>> {
  const batch = await getBatch(deps, accountId, batchId);
  const feed = await LiveFeed.subscribe<BatchProgressEvent>(
    deps.pubsub,
    [{ trigger: deps.topics.batch(accountId, batch.id), pattern: false }],
    deps.config.subscriptions.buffer,
  );
  return withCleanup(batchStream(deps, batch, feed), () => feed.close());
}

async function* batchStream(deps: StreamDeps, batch: Batch, feed: LiveFeed<BatchProgressEvent>): AsyncGenerator<BatchWithCounts> {
  try {
    const now = await deps.db.batch.findUniqueOrThrow({ where: { id: batch.id } });
    const counts = (await batchCounts(deps.db, [batch.id])).get(batch.id)!;
    yield { ...now, counts };
    if (now.completedAt) return;
    for await (const event of feed) {
      yield { ...event.batch, counts: event.counts };
      if (event.batch.completedAt) return;
    }
  } finally {
    feed.close();
  }
}


/** generatedTransitionUpdated: the combined video now, then each change; ends when it has ended. */
export async function generatedTransitionUpdates(
  deps: StreamDeps,
  accountId: string,
  id: string,
): Promise<AsyncIterableIterator<GeneratedTransition>> {
  await getGeneratedTransition(deps, accountId, id);
  const feed = await LiveFeed.subscribe<GeneratedTransitionEvent>(
    deps.pubsub,
    [{ trigger: deps.topics.generatedTransition(accountId, id), pattern: false }],
    deps.config.subscriptions.buffer,
  );
  const ended = (row: GeneratedTransition) => row.status === 'COMPLETED' || row.status === 'FAILED';
  async function* stream(): AsyncGenerator<GeneratedTransition> {
    const now = await deps.db.generatedTransition.findUniqueOrThrow({ where: { id } });
    yield now;
    if (ended(now)) return;
    let version = now.version;
    for await (const event of feed) {
      const row = event.generatedTransition;
      if (row.version <= version) continue;
      version = row.version;
      yield row;
      if (ended(row)) return;
    }
  }
  return withCleanup(stream(), () => feed.close());
}
