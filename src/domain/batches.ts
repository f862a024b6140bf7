import type { Db, Sql } from '../db.ts';
import { TransitionStatus } from '../generated/prisma/enums.ts';
import { TERMINAL } from './statuses.ts';
import { Prisma, type Batch, type Transition } from '../generated/prisma/client.ts';
import { notFound } from './errors.ts';
import { insertBatchItems } from './bulk-inserts.ts';
import { startRuns } from './state-machine.ts';
import type { Tx } from './idempotency.ts';
import { READ_POINT_COLUMNS, readPointOf, type ReadPoint } from './read-points.ts';

export const BATCH_STATUSES = ['QUEUED', 'RUNNING', 'COMPLETED', 'PARTIAL', 'FAILED', 'CANCELED'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

export interface BatchCounts {
  total: number;
  /** Seconds of video the batch asks for (for its cost estimate). */
  seconds: number;
  queued: number;
  running: number;
  completed: number;
  failed: number;
  canceled: number;
}

const emptyCounts = (): BatchCounts => ({ total: 0, seconds: 0, queued: 0, running: 0, completed: 0, failed: 0, canceled: 0 });

const bucket: Record<TransitionStatus, keyof BatchCounts> = {
  DRAFT: 'queued',
  QUEUED: 'queued',
  SUBMITTED: 'running',
  IN_PROGRESS: 'running',
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELED: 'canceled',
};

/** A batch's status follows its items: PARTIAL means it ended with some, not all, completed. */
export function batchStatus(c: BatchCounts): BatchStatus {
  const ended = c.completed + c.failed + c.canceled;
  if (ended < c.total) return c.running > 0 || ended > 0 ? 'RUNNING' : 'QUEUED';
  if (c.completed === c.total) return 'COMPLETED';
  if (c.completed > 0) return 'PARTIAL';
  if (c.failed > 0) return 'FAILED';
  return 'CANCELED';
}

/**
 * A batch item's live status is its transition's while the transition's current run is in this
 * batch; once the transition starts a run elsewhere, the item keeps the status it ended with
 * (frozen by startRuns). So a status change writes one row, not two.
 */
const ITEM_STATUS_SQL = `CASE WHEN t."batchId" = i."batchId" THEN t."status" ELSE i."status" END`;
const ITEM_STATUS = Prisma.raw(ITEM_STATUS_SQL);

/**
 * Counts per batch, for queries (a batch gone has none): the same one statement as
 * batchesWithCounts, however many batches and items.
 */
export async function batchCounts(deps: { sql: Pick<Sql, 'query'> }, batchIds: readonly string[]): Promise<Map<string, BatchCounts>> {
  const found = new Map((await batchesWithCounts(deps, batchIds)).map((b) => [b.id, b.counts]));
  return new Map(batchIds.map((id) => [id, found.get(id) ?? emptyCounts()]));
}

function count(c: BatchCounts, status: TransitionStatus, n: number, seconds: number) {
  c[bucket[status]] += n;
  c.total += n;
  c.seconds += seconds;
}

/** A batch with its counts, both of one read, and where that read stands (see read-points.ts). */
export type BatchNow = Batch & { counts: BatchCounts; readAt: ReadPoint };

/**
 * Batches with their counts, as progress messages and live streams start from: one statement, so
 * a batch's row (its completedAt) and its counts are of one moment, the one `readAt` names. With
 * an account, only that account's batches (the read is then also the check that they are its).
 * Through the pool, not in a transaction that has written (see read-points.ts).
 */
export async function batchesWithCounts(deps: { sql: Pick<Sql, 'query'> }, batchIds: readonly string[], accountId?: string): Promise<BatchNow[]> {
  if (batchIds.length === 0) return [];
  const rows = await deps.sql.query<
    Batch & { itemStatus: TransitionStatus | null; itemCount: number | null; itemSeconds: number | null; readSince: number; readXmax: number; readRunning: number }
  >(
    `SELECT b.*, c."itemStatus", c."itemCount", c."itemSeconds", p.*
       FROM "Batch" b
       CROSS JOIN (SELECT ${READ_POINT_COLUMNS}) p
       LEFT JOIN LATERAL (
         SELECT ${ITEM_STATUS_SQL} AS "itemStatus", count(*)::int AS "itemCount", sum(t."durationSeconds")::int AS "itemSeconds"
           FROM "BatchItem" i JOIN "Transition" t ON t."id" = i."transitionId"
          WHERE i."batchId" = b."id"
          GROUP BY 1
       ) c ON true
      WHERE b."id" = ANY($1::uuid[])${accountId === undefined ? '' : ' AND b."accountId" = $2::uuid'}`,
    accountId === undefined ? [batchIds] : [batchIds, accountId],
  );
  const batches = new Map<string, BatchNow>();
  for (const row of rows) {
    const { itemStatus, itemCount, itemSeconds, readSince: _s, readXmax: _x, readRunning: _r, ...batch } = row;
    let now = batches.get(batch.id);
    if (!now) batches.set(batch.id, (now = { ...batch, counts: emptyCounts(), readAt: readPointOf(row) }));
    if (itemStatus !== null) count(now.counts, itemStatus, itemCount!, itemSeconds!);
  }
  return [...batches.values()];
}

/** The account's batch with its counts, as batchProgress starts from; NOT_FOUND when it is not the account's. */
export async function batchWithCounts(deps: { sql: Pick<Sql, 'query'> }, accountId: string, batchId: string): Promise<BatchNow> {
  const [batch] = await batchesWithCounts(deps, [batchId], accountId);
  if (!batch) throw notFound('Batch');
  return batch;
}

/** Every item has ended (completed, failed or canceled): the batch is due to close. */
export const allEnded = (c: BatchCounts) => c.total > 0 && c.completed + c.failed + c.canceled === c.total;

export async function createBatch(tx: Tx, accountId: string, idempotencyKey: string | null) {
  return tx.batch.create({ data: { accountId, idempotencyKey } });
}

/**
 * Starts a run for existing transitions that are all the caller's and all idle, with their items
 * in the given order. Returns the queued rows, or null when some transition is not idle (the
 * caller reports CONFLICT and the transaction rolls back).
 */
export async function queueInBatch(
  tx: Tx,
  accountId: string,
  batchId: string,
  transitionIds: readonly string[],
): Promise<Transition[] | null> {
  const rows = await startRuns(tx, accountId, transitionIds, batchId);
  if (rows.length !== transitionIds.length) return null;
  await insertBatchItems(tx, batchId, transitionIds, TransitionStatus.QUEUED);
  // In the caller's order, which is the order they are enqueued (FIFO within an account).
  const position = new Map(transitionIds.map((id, i) => [id, i]));
  return rows.sort((a, b) => position.get(a.id)! - position.get(b.id)!);
}

/**
 * Closed batches whose end no batchProgress message has carried (endSent false): their closer
 * died between its commit and its message, and their streams wait for an end no later change
 * would send. Only those closed over `settleMs` ago (younger ones are their closer's to send),
 * oldest first, at most SWEEP_LIMIT; the index holds only these rows.
 */
export async function unsentBatchEnds(deps: { sql: Pick<Sql, 'query'> }, settleMs: number): Promise<string[]> {
  const rows = await deps.sql.query<{ id: string }>(
    `SELECT "id" FROM "Batch"
      WHERE "completedAt" IS NOT NULL AND NOT "endSent"
        AND "completedAt" < (now() AT TIME ZONE 'UTC') - $1::int * interval '1 millisecond'
      ORDER BY "completedAt" LIMIT $2::int`,
    [settleMs, SWEEP_LIMIT],
  );
  return rows.map((b) => b.id);
}

/**
 * Records that a message carried these batches' ends, each with the completedAt it carried (a
 * batch reopened and closed again since then keeps its newer end unsent). One statement.
 */
export async function markBatchEndsSent(deps: { sql: Pick<Sql, 'query'> }, ends: ReadonlyArray<{ id: string; completedAt: Date }>) {
  if (ends.length === 0) return;
  await deps.sql.query(
    `UPDATE "Batch" b SET "endSent" = true
       FROM unnest($1::uuid[], $2::timestamptz[]) AS sent("id", "at")
      WHERE b."id" = sent."id" AND b."completedAt" = (sent."at" AT TIME ZONE 'UTC')
        AND NOT b."endSent"`,
    [ends.map((e) => e.id), ends.map((e) => e.completedAt.toISOString())],
  );
}

/** Batches one reconciler pass closes (or sends the end of) at most. */
const SWEEP_LIMIT = 1_000;

/**
 * Sets completedAt on the batches among `batchIds` whose items have all ended. Runs after the
 * changes committed, in a statement of its own: inside a change's statement, two items finishing
 * at once would each see the other as still running (same snapshot) and neither would close the
 * batch. Returns the batches it closed, with the completedAt each got.
 *
 * The batches are locked first (in id order, so two closers cannot deadlock), and the close reads
 * their items in a statement after that: a retry reopening one of them commits before the read
 * (its transaction holds the batch row), so its item is seen QUEUED. In one statement the item
 * would be read from the snapshot before the wait, and the batch closed over a queued item. (This
 * rests on READ COMMITTED, PostgreSQL's default: each statement its own snapshot.) It costs a
 * transaction (BEGIN, the lock, the close, COMMIT) where one statement was, once per batch that ends.
 */
export async function closeFinishedBatches(db: Db, batchIds: readonly string[] | 'all-open'): Promise<Array<{ id: string; completedAt: Date }>> {
  if (batchIds !== 'all-open' && batchIds.length === 0) return [];
  const which = batchIds === 'all-open' ? Prisma.empty : Prisma.sql`AND b."id" = ANY(${[...batchIds]}::uuid[])`;
  const ended = Prisma.sql`
    b."completedAt" IS NULL
    AND EXISTS (SELECT 1 FROM "BatchItem" i WHERE i."batchId" = b."id")
    AND NOT EXISTS (
      SELECT 1 FROM "BatchItem" i JOIN "Transition" t ON t."id" = i."transitionId"
      WHERE i."batchId" = b."id" AND ${ITEM_STATUS} <> ALL(${[...TERMINAL]}::"TransitionStatus"[]))`;
  // The reconciler's sweep of every open batch takes a bounded set, and skips rows being changed
  // (a retry reopening one, a closer already at it): its next pass sees them. A flush waits for
  // them instead: the closer ahead of it may have read before its change committed.
  const lock =
    batchIds === 'all-open' ? Prisma.sql`LIMIT ${SWEEP_LIMIT} FOR NO KEY UPDATE SKIP LOCKED` : Prisma.sql`FOR NO KEY UPDATE`;
  return db.$transaction(async (tx) => {
    // Only the batches that look ended are locked; the close checks them again after the wait.
    const candidates = await tx.$queryRaw<Array<{ id: string }>>`
      SELECT b."id" FROM "Batch" b WHERE ${ended} ${which} ORDER BY b."id" ${lock}`;
    if (candidates.length === 0) return [];
    return tx.$queryRaw<Array<{ id: string; completedAt: Date }>>`
      UPDATE "Batch" b SET "completedAt" = (now() AT TIME ZONE 'UTC'), "endSent" = false
      WHERE ${ended} AND b."id" = ANY(${candidates.map((b) => b.id)}::uuid[])
      RETURNING b."id", b."completedAt"`;
  });
}
