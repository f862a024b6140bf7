import type { BatchNow } from '../domain/batches.ts';
import { readBefore } from '../domain/read-points.ts';
import { getTransition } from '../domain/transitions.ts';
import type { Batch, GeneratedTransition, Transition } from '../generated/prisma/client.ts';
import { getGeneratedTransition } from '../domain/combine.ts';
import { LiveFeed } from './live.ts';
import { RowStream, type RowView } from './row-stream.ts';
import { sharedBatchSnapshot, sharedBatchWithCounts } from './snapshots.ts';
import type { BatchFeedMessage, CombinedChange, TransitionFeedMessage } from './messages.ts';
import { TransitionStream, type StreamDeps } from './transition-stream.ts';

/** A batch as the API shows it, with the counts an event brought (no query per subscriber) and where they were read. */
export type BatchWithCounts = Batch & Partial<Pick<BatchNow, 'counts' | 'readAt'>>;

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
  const { transitionId, batchId } = scope;
  const triggers = transitionId
    ? [{ trigger: topics.oneTransition(accountId, transitionId), pattern: true }]
    : batchId
      ? [
          { trigger: topics.batchTransitions(accountId, batchId), pattern: true },
          { trigger: topics.batch(accountId, batchId), pattern: false },
        ]
      : [{ trigger: topics.accountTransitions(accountId), pattern: true }];
  const feed = await LiveFeed.subscribe<TransitionFeedMessage>(deps.pubsub, triggers, deps.config.subscriptions.buffer);
  // The snapshot is read once the feed listens, and that one read is also the check that the id
  // is the account's: a foreign or unknown one is a NOT_FOUND now, and its feed is let go.
  try {
    if (transitionId) {
      const transition = await getTransition(deps, accountId, transitionId);
      return new TransitionStream(deps, accountId, feed, { transitionId }, { transition });
    }
    if (batchId) return new TransitionStream(deps, accountId, feed, { batchId }, { batch: await sharedBatchSnapshot(deps, accountId, batchId) });
    return new TransitionStream(deps, accountId, feed, null, null);
  } catch (error) {
    feed.close();
    throw error;
  }
}

/** batchProgress: the batch now, then again with fresh counts on every change; ends with the batch, or when it is deleted. */
export async function batchProgress(deps: StreamDeps, accountId: string, batchId: string): Promise<AsyncIterableIterator<BatchWithCounts>> {
  const feed = await LiveFeed.subscribe<BatchFeedMessage>(
    deps.pubsub,
    [{ trigger: deps.topics.batch(accountId, batchId), pattern: false }],
    deps.config.subscriptions.buffer,
  );
  // As transitionUpdated: read once the feed listens, the same read checking the id.
  return startedWith(feed, BATCH_PROGRESS, () => sharedBatchWithCounts(deps, accountId, batchId));
}

/** The row each batch message made, while the message lives (pub/sub decodes a message once for all its listeners). */
const batchRows = new WeakMap<BatchFeedMessage, BatchWithCounts>();

const BATCH_PROGRESS: RowView<BatchWithCounts, BatchFeedMessage> = {
  // The batch row's other columns never change; the message brings what does. Processes publish
  // in any order: a message read before what was sent last would move the counts back, and is
  // dropped. (One without a read point, from a process not yet updated, is taken as it comes.)
  // A batch-deleted message never gets here (`gone` ends the stream first): its test only narrows.
  apply: (message, last) => {
    if (message.kind !== 'batch' || (message.readAt && last.readAt && readBefore(message.readAt, last.readAt))) return null;
    if (!message.readAt) return { ...last, completedAt: message.completedAt, counts: message.counts, readAt: last.readAt };
    // With its read point, the row a message makes is the same for every subscriber of the batch
    // (the columns it does not bring never change; endSent is not shown): one object for all of
    // this process's, so its execution is shared too (src/graphql/shared-executions.ts).
    let row = batchRows.get(message);
    if (!row) batchRows.set(message, (row = { ...last, completedAt: message.completedAt, counts: message.counts, readAt: message.readAt }));
    return row;
  },
  ended: (row) => Boolean(row.completedAt),
  // Deleted with its last items (deleteTransitions): no progress will ever come.
  gone: (message) => message.kind === 'batch-deleted',
};

/** generatedTransitionUpdated: the combined video now, then each change; ends when it has ended. */
export async function generatedTransitionUpdates(
  deps: StreamDeps,
  accountId: string,
  id: string,
): Promise<AsyncIterableIterator<GeneratedTransition>> {
  const feed = await LiveFeed.subscribe<CombinedChange>(
    deps.pubsub,
    [{ trigger: deps.topics.generatedTransition(accountId, id), pattern: false }],
    deps.config.subscriptions.buffer,
  );
  return startedWith(feed, GENERATED_TRANSITION, () => getGeneratedTransition(deps, accountId, id));
}

const GENERATED_TRANSITION: RowView<GeneratedTransition, CombinedChange> = {
  // Versions only go up: an event older than what was sent is dropped.
  apply: ({ generatedTransition: row }, last) => (row.version > last.version ? row : null),
  ended: (row) => row.status === 'COMPLETED' || row.status === 'FAILED',
};

/** A row stream from its snapshot; when the read fails (a foreign id: NOT_FOUND), its feed is let go. */
async function startedWith<Row, Message>(feed: LiveFeed<Message>, view: RowView<Row, Message>, read: () => Promise<Row>) {
  try {
    return new RowStream(view, feed, await read());
  } catch (error) {
    feed.close();
    throw error;
  }
}
