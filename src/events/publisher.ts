import type { Db, Sql } from '../db.ts';
import { allEnded, batchesWithCounts, batchStatus, closeFinishedBatches, markBatchEndsSent, type BatchNow } from '../domain/batches.ts';
import type { Deletion, DeletionListener } from '../domain/ports.ts';
import type { ChangeListener, TransitionField } from '../domain/state-machine.ts';
import type { GeneratedTransition, Transition } from '../generated/prisma/client.ts';
import type { Logger } from '../logger.ts';
import { transitionChange, type BatchDeleted, type BatchProgress, type CombinedChange, type TransitionDeleted } from './messages.ts';
import type { PubSub } from './pubsub.ts';
import type { Topics } from './topics.ts';

/** After a failed flush (the database or Redis away), its batches go again this much later. */
const RETRY_MS = 1_000;

/**
 * Turns committed changes into messages: one per transition change (its ids, status, version and
 * the columns it wrote), and batch progress per batch, coalesced to one statement for every batch
 * changed in `progressIntervalMs` (a 1,000-item batch would otherwise count its items 3,000
 * times). The same coalesced pass closes batches whose items have all ended (completedAt), and
 * reads those again after their close.
 */
export class EventPublisher implements ChangeListener, DeletionListener {
  private readonly pendingBatches = new Set<string>();
  /** Deletion messages Redis refused: sent again with the next flush (no later change would end their streams). */
  private pendingDeletions: Array<{ topic: string; message: TransitionDeleted | BatchDeleted }> = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly deps: { db: Db; sql: Pick<Sql, 'query'>; pubsub: PubSub; topics: Topics; logger: Logger },
    private readonly progressIntervalMs = 100,
  ) {}

  async transitionsChanged(rows: readonly Transition[], fields?: readonly TransitionField[]) {
    const { pubsub, topics } = this.deps;
    try {
      await Promise.all(
        rows.map((row) => pubsub.publish(topics.transition(row.accountId, row.batchId, row.id), transitionChange(row, fields))),
      );
    } catch (err) {
      // The change is committed; a lost event is recovered by the subscribers' snapshot.
      this.deps.logger.warn({ err }, 'could not publish transition events');
    }
    for (const row of rows) if (row.batchId) this.pendingBatches.add(row.batchId);
    this.schedule();
  }

  /** Batches changed with no transition change to bring them (closed by the reconciler): their progress goes out with the next flush. */
  batchesChanged(batchIds: readonly string[]) {
    for (const id of batchIds) this.pendingBatches.add(id);
    this.schedule();
  }

  /**
   * Rows deleted: a message on each deleted transition's topic and each deleted batch's (their
   * streams end), and fresh counts for the batches that lost items, with the next flush. What
   * Redis refuses goes again with the flushes after (one PUBLISH per row deleted, as a change).
   */
  async deleted({ accountId, transitions, changedBatchIds, deletedBatchIds }: Deletion) {
    const { topics } = this.deps;
    this.batchesChanged(changedBatchIds);
    await this.publishDeletions([
      ...transitions.map(({ id, batchId }) => ({
        topic: topics.transition(accountId, batchId, id),
        message: { kind: 'transition-deleted', id, accountId } satisfies TransitionDeleted,
      })),
      ...deletedBatchIds.map((batchId) => ({
        topic: topics.batch(accountId, batchId),
        message: { kind: 'batch-deleted', batchId, accountId } satisfies BatchDeleted,
      })),
    ]);
  }

  /** Publishes each; those Redis refuses wait for the next flush. */
  private async publishDeletions(messages: EventPublisher['pendingDeletions']) {
    const results = await Promise.allSettled(messages.map(({ topic, message }) => this.deps.pubsub.publish(topic, message)));
    const refused = messages.filter((_, i) => results[i]!.status === 'rejected');
    if (refused.length === 0) return;
    const err = (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason;
    // Closed (the process is going): its streams' clients learn of it when they resubscribe (NOT_FOUND).
    if (this.closed) return this.deps.logger.warn({ err, refused: refused.length }, 'could not publish deletions while closing');
    this.deps.logger.warn({ err, refused: refused.length }, 'could not publish deletions; trying again');
    this.pendingDeletions.push(...refused);
    this.schedule(RETRY_MS);
  }

  async generatedTransitionChanged(row: GeneratedTransition) {
    try {
      const message: CombinedChange = { kind: 'combined', generatedTransition: row };
      await this.deps.pubsub.publish(this.deps.topics.generatedTransition(row.accountId, row.id), message);
    } catch (err) {
      this.deps.logger.warn({ err }, 'could not publish a combined video event');
    }
  }

  /** fal ended a request of this transition without a result (see topics.requestEnded). */
  async requestEnded(ended: { transitionId: string; requestId: string }) {
    await this.deps.pubsub.getPublisher().publish(this.deps.topics.requestEnded(), JSON.stringify(ended));
  }

  private schedule(delayMs = this.progressIntervalMs) {
    // Closed: its last flush has run; a retry would meet a closed pool and Redis, every second.
    if (this.closed || this.timer || (this.pendingBatches.size === 0 && this.pendingDeletions.length === 0)) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, delayMs);
    this.timer.unref();
  }

  /** Publishes progress for every batch changed since the last flush. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      // Never rejects (each message settles on its own), so the chain of flushes goes on.
      if (this.pendingDeletions.length > 0) await this.publishDeletions(this.pendingDeletions.splice(0)).catch(() => undefined);
      if (this.pendingBatches.size === 0) return;
      const batches = new Set(this.pendingBatches);
      this.pendingBatches.clear();
      try {
        // Each batch's completedAt and counts from one read (one moment), which the message names.
        let now = await batchesWithCounts(this.deps, [...batches]);
        // Closed once: a batch already closed is not closed again at every later change (its
        // posters), only one that has just ended.
        const ended = now.filter((b) => b.completedAt === null && allEnded(b.counts));
        if (ended.length > 0) {
          await closeFinishedBatches(this.deps.db, ended.map((b) => b.id));
          // Read again, after the close: closed by this flush or by another process, or reopened
          // by a retry meanwhile, the message says what the database holds, in a read later than
          // any that saw the batch open (a subscriber's snapshot drops messages older than itself).
          const after = new Map((await batchesWithCounts(this.deps, ended.map((b) => b.id))).map((b) => [b.id, b]));
          // Gone between the reads (deleted): nothing to say of it.
          const endedIds = new Set(ended.map((b) => b.id));
          now = now.flatMap((b) => (endedIds.has(b.id) ? (after.has(b.id) ? [after.get(b.id)!] : []) : [b]));
        }
        await Promise.all(
          now.map((batch) => {
            const message: BatchProgress = {
              kind: 'batch',
              batchId: batch.id,
              accountId: batch.accountId,
              completedAt: batch.completedAt,
              counts: batch.counts,
              status: batchStatus(batch.counts),
              readAt: batch.readAt,
            };
            return this.deps.pubsub.publish(this.deps.topics.batch(batch.accountId, batch.id), message);
          }),
        );
        // Ends carried for the first time: recorded, so that the reconciler does not send them
        // (it sends those a closer that died never did). Not recorded, they are only sent again.
        const firstEnds = now.filter((b): b is BatchNow & { completedAt: Date } => b.completedAt !== null && !b.endSent);
        await markBatchEndsSent(this.deps, firstEnds).catch((err: unknown) => this.deps.logger.warn({ err }, 'could not record batch ends as sent'));
      } catch (err) {
        this.deps.logger.warn({ err }, 'could not publish batch progress; trying again');
        // Their last progress (a completedAt) may be the one lost: they go again, a moment later.
        for (const id of batches) this.pendingBatches.add(id);
        this.schedule(RETRY_MS);
      }
    });
    return this.flushing;
  }

  async close() {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.flush();
  }
}
