/**
 * Where a statement's read stands in PostgreSQL's commit order. Messages computed by different
 * processes (batch progress) carry the point of the read they come from, so a subscriber can put
 * them in order against each other and against its own snapshot, with no counter written on
 * every change.
 *
 * A statement's snapshot sees the transactions below its xmax (latestCompletedXid + 1) except
 * those still running when it was taken (its xip). A snapshot taken later has an xmax at least as
 * high, and with the same xmax, its running transactions are among the earlier one's (each was
 * already running then). So (higher xmax, then fewer running) orders reads as they were taken,
 * and two reads at the same point saw the same commits. (READ COMMITTED: one snapshot per
 * statement, and pg_current_snapshot() is the statement's.)
 */
export interface ReadPoint {
  xmax: number;
  running: number;
}

/**
 * The statement's read point as the columns "readXmax" and "readRunning". xid8 comes as text:
 * as a number it is exact below 2^53 transactions.
 */
export const READ_POINT_COLUMNS = `pg_snapshot_xmax(pg_current_snapshot())::text::float8 AS "readXmax",
  (SELECT count(*) FROM pg_snapshot_xip(pg_current_snapshot()))::int AS "readRunning"`;

export const readPointOf = (row: { readXmax: number; readRunning: number }): ReadPoint => ({ xmax: row.readXmax, running: row.readRunning });

/** Negative when `a` was read before `b`, 0 when both saw the same commits, positive after. */
export const compareReads = (a: ReadPoint, b: ReadPoint): number => a.xmax - b.xmax || b.running - a.running;
