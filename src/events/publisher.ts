import type { Db } from '../db.ts';
import { batchCounts, batchStatus, closeFinishedBatches } from '../domain/batches.ts';
import type { ChangeListener, TransitionField } from '../domain/state-machine.ts';
import type { GeneratedTransition, Transition } from '../generated/prisma/client.ts';
import type { Logger } from '../logger.ts';
import { transitionChange, type BatchProgress, type CombinedChange } from './messages.ts';
import type { PubSub } from './pubsub.ts';
import type { Topics } from './topics.ts';

/** After a failed flush (the database or Redis away), its batches go again this much later. */
const RETRY_MS = 1_000;

/**
 * Turns committed changes into messages: one per transition change (its ids, status, version and
 * the columns it wrote), and batch progress per batch, coalesced to one count query per batch per
 * `progressIntervalMs` (a 1,000-item batch would otherwise count its items 3,000 times). The same
 * coalesced pass closes batches whose items have all ended (completedAt).
 */
export class EventPublisher implements ChangeListener {
  private readonly pendingBatches = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: { db: Db; pubsub: PubSub; topics: Topics; logger: Logger },
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
    if (this.timer || this.pendingBatches.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, delayMs);
    this.timer.unref();
  }

  /** Publishes progress for every batch changed since the last flush. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.pendingBatches.size === 0) return;
      const batches = new Set(this.pendingBatches);
      this.pendingBatches.clear();
      try {
        const ids = [...batches.keys()];
        const read = (ids: string[]) =>
          this.deps.db.batch.findMany({ where: { id: { in: ids } }, select: { id: true, accountId: true, completedAt: true } });
        // The batches before their counts: a completedAt read first goes with counts that show the
        // batch ended (a subscriber's batchProgress ends at the first message with one).
        const rows = await read(ids);
        const counts = await batchCounts(this.deps.db, ids);
        // Closed once: a batch already closed is not closed again at every later change (its
        // posters), only one that has just ended.
        const ended = rows.filter((b) => {
          const c = counts.get(b.id)!;
          return b.completedAt === null && c.total > 0 && c.completed + c.failed + c.canceled === c.total;
        });
        if (ended.length > 0) {
          const closed = new Map((await closeFinishedBatches(this.deps.db, ended.map((b) => b.id))).map((b) => [b.id, b.completedAt]));
          for (const b of ended) b.completedAt = closed.get(b.id) ?? null;
          // Not closed by this statement: another process closed it first, or an item reopened.
          // Read again: the message says what the database holds.
          const missed = ended.filter((b) => !closed.has(b.id));
          if (missed.length > 0) {
            const again = new Map((await read(missed.map((b) => b.id))).map((b) => [b.id, b.completedAt]));
            for (const b of missed) b.completedAt = again.get(b.id) ?? null;
          }
        }
        await Promise.all(
          rows.map((batch) => {
            const c = counts.get(batch.id)!;
            const message: BatchProgress = {
              kind: 'batch',
              batchId: batch.id,
              accountId: batch.accountId,
              completedAt: batch.completedAt,
              counts: c,
              status: batchStatus(c),
            };
            return this.deps.pubsub.publish(this.deps.topics.batch(batch.accountId, batch.id), message);
          }),
        );
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
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.flush();
  }
}
