import type { Db } from '../db.ts';
import { TransitionStatus } from '../generated/prisma/enums.ts';
import type { Transition } from '../generated/prisma/client.ts';
import { insertBatchItems } from './bulk-inserts.ts';
import { startRuns } from './state-machine.ts';
import type { Tx } from './idempotency.ts';

export const BATCH_STATUSES = ['QUEUED', 'RUNNING', 'COMPLETED', 'PARTIAL', 'FAILED', 'CANCELED'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

export interface BatchCounts {
  total: number;
  queued: number;
  running: number;
  completed: number;
  failed: number;
  canceled: number;
}

const emptyCounts = (): BatchCounts => ({ total: 0, queued: 0, running: 0, completed: 0, failed: 0, canceled: 0 });

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

/** Counts per batch in one grouped query, however many batches and items. */
export async function batchCounts(db: Db | Tx, batchIds: readonly string[]): Promise<Map<string, BatchCounts>> {
  const rows = await db.batchItem.groupBy({
    by: ['batchId', 'status'],
    where: { batchId: { in: [...batchIds] } },
    _count: { _all: true },
  });
  const counts = new Map(batchIds.map((id) => [id, emptyCounts()]));
  for (const row of rows) {
    const c = counts.get(row.batchId)!;
    c[bucket[row.status]] += row._count._all;
    c.total += row._count._all;
  }
  return counts;
}

export const TERMINAL: readonly TransitionStatus[] = [
  TransitionStatus.COMPLETED,
  TransitionStatus.FAILED,
  TransitionStatus.CANCELED,
];

/** Statuses from which a transition may be (re)generated. */
export const GENERATABLE: readonly TransitionStatus[] = [TransitionStatus.DRAFT, ...TERMINAL];

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
