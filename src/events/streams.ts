import { batchCounts, type BatchCounts } from '../domain/batches.ts';
import { loadTransition } from '../domain/state-machine.ts';
import { getBatch, getTransition } from '../domain/transitions.ts';
import type { Batch, GeneratedTransition, Transition } from '../generated/prisma/client.ts';
import { getGeneratedTransition } from '../domain/combine.ts';
import type { Segue } from '../runtime.ts';
import { LiveFeed, withCleanup } from './live.ts';
import type { BatchProgress, CombinedChange, TransitionChange } from './messages.ts';
import { TransitionRows } from './rows.ts';
import { SentVersions } from './sent-versions.ts';

type StreamDeps = Pick<Segue, 'db' | 'sql' | 'pubsub' | 'topics' | 'config' | 'generationJobs' | 'events' | 'logger'>;

/** A batch as the API shows it, with the counts an event brought (no query per subscriber). */
export type BatchWithCounts = Batch & { counts?: BatchCounts };

const SENT_VERSIONS_KEPT = 10_000;

/** The rows this process streams, shared by its subscribers (one per pub/sub connection: per process). */
const sharedRows = new WeakMap<object, TransitionRows>();
const rowsOf = (deps: StreamDeps) => {
  let rows = sharedRows.get(deps.pubsub);
  if (!rows) sharedRows.set(deps.pubsub, (rows = new TransitionRows((id) => loadTransition(deps, id))));
  return rows;
};

/** The transitions of a batch in its order, each as it is now. */
async function batchTransitions(deps: StreamDeps, batchId: string): Promise<Transition[]> {
  const items = await deps.db.batchItem.findMany({
    where: { batchId },
    orderBy: { position: 'asc' },
    include: { transition: true },
  });
  const rows = rowsOf(deps);
  return items.map((i) => rows.remember(i.transition));
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
  const feed = await LiveFeed.subscribe<TransitionChange | BatchProgress>(deps.pubsub, triggers, deps.config.subscriptions.buffer);
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
  feed: LiveFeed<TransitionChange | BatchProgress>,
  transition: Transition | null,
  batch: Batch | null,
): AsyncGenerator<Transition> {
  const rows = rowsOf(deps);
  // The version last sent per transition, so updates only go forward.
  const sent = new SentVersions(SENT_VERSIONS_KEPT);
  // Once the batch has ended: the transitions still waiting for their poster; none left, it ends.
  const ending: { posters: Set<string> | null } = { posters: null };
  let grace: NodeJS.Timeout | undefined;
  const batchEnded = (rows: Transition[]) => {
    ending.posters = new Set(rows.filter(awaitsPoster).map((r) => r.id));
    grace = setTimeout(() => feed.close(), POSTER_GRACE_MS);
    return ending.posters.size === 0;
  };
  try {
    // Snapshots are drained as they are sent: a suspended generator keeps its locals, and an idle
    // subscriber must not hold on to the rows it sent when it started.
    if (transition) {
      const snapshot = [rows.remember(await getTransition(deps, accountId, transition.id))];
      while (snapshot.length > 0) {
        const row = snapshot.shift()!;
        if (sent.advance(row.id, row.version)) yield row;
      }
    }
    if (batch) {
      const snapshot = await batchTransitions(deps, batch.id);
      const ended = (await deps.db.batch.findUniqueOrThrow({ where: { id: batch.id }, select: { completedAt: true } })).completedAt;
      const done = ended !== null && batchEnded(snapshot);
      while (snapshot.length > 0) {
        const row = snapshot.shift()!;
        if (sent.advance(row.id, row.version)) yield row;
      }
      if (done) return;
    }
    for await (const message of feed) {
      if (message.kind === 'transition') {
        // Already sent this version (or a newer one): nothing to resolve.
        if (sent.get(message.id) >= message.version) continue;
        const row = await rows.resolve(message);
        if (!row || row.accountId !== accountId) continue;
        if (sent.advance(row.id, row.version)) yield row;
        if (ending.posters && !awaitsPoster(row)) {
          ending.posters.delete(row.id);
          if (ending.posters.size === 0) return;
        }
      } else if (message.completedAt && !ending.posters) {
        // The batch ended: send whatever changes have not come through yet, then the posters.
        const snapshot = await batchTransitions(deps, batch!.id);
        const done = batchEnded(snapshot);
        while (snapshot.length > 0) {
          const row = snapshot.shift()!;
          if (sent.advance(row.id, row.version)) yield row;
        }
        if (done) return;
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
  const feed = await LiveFeed.subscribe<BatchProgress>(
    deps.pubsub,
    [{ trigger: deps.topics.batch(accountId, batch.id), pattern: false }],
    deps.config.subscriptions.buffer,
  );
  return withCleanup(batchStream(deps, batch, feed), () => feed.close());
}

async function* batchStream(deps: StreamDeps, batch: Batch, feed: LiveFeed<BatchProgress>): AsyncGenerator<BatchWithCounts> {
  try {
    const now = await deps.db.batch.findUniqueOrThrow({ where: { id: batch.id } });
    const counts = (await batchCounts(deps.db, [batch.id])).get(batch.id)!;
    yield { ...now, counts };
    if (now.completedAt) return;
    for await (const message of feed) {
      // The batch row's other columns never change; the message brings what does.
      yield { ...now, completedAt: message.completedAt, counts: message.counts };
      if (message.completedAt) return;
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
  const feed = await LiveFeed.subscribe<CombinedChange>(
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
