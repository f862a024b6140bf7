import type { Sql } from '../db.ts';
import { batchWithCounts, type BatchNow } from '../domain/batches.ts';
import { batchSnapshot, type BatchSnapshot } from '../domain/transitions.ts';
import { SharedReads } from './shared-reads.ts';

/** The snapshots live streams start from (and a batch stream reads again at its end), shared as SharedReads says. */
interface Snapshots {
  batches: SharedReads<BatchSnapshot>;
  progress: SharedReads<BatchNow>;
}

/** One set per database (per process, but tests run several). */
const snapshots = new WeakMap<Pick<Sql, 'query'>, Snapshots>();

function snapshotsOf(sql: Pick<Sql, 'query'>): Snapshots {
  let found = snapshots.get(sql);
  if (!found) snapshots.set(sql, (found = { batches: new SharedReads(sql), progress: new SharedReads(sql) }));
  return found;
}

/** A batch's transitions and its end (batchSnapshot), shared by the subscribers who ask together. Call once the feed listens. */
export const sharedBatchSnapshot = (deps: { sql: Pick<Sql, 'query'> }, accountId: string, batchId: string) =>
  snapshotsOf(deps.sql).batches.read(`${accountId}/${batchId}`, (sql) => batchSnapshot({ sql }, accountId, batchId));

/** A batch with its counts (batchWithCounts), shared by the subscribers who ask together. Call once the feed listens. */
export const sharedBatchWithCounts = (deps: { sql: Pick<Sql, 'query'> }, accountId: string, batchId: string) =>
  snapshotsOf(deps.sql).progress.read(`${accountId}/${batchId}`, (sql) => batchWithCounts({ sql }, accountId, batchId));
