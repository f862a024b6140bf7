/**
 * Where a statement's read stands in the order in which PostgreSQL's commits became visible.
 * Messages computed by different processes (batch progress) carry the point of the read they come
 * from, so a subscriber can put them in order against each other and against its own snapshot,
 * with no counter written on every change.
 *
 * A statement's snapshot sees the transactions below its xmax (latestCompletedXid + 1) except
 * those still running when it was taken (its xip). A snapshot taken later has an xmax at least as
 * high, and with the same xmax, its running transactions are among the earlier one's (each was
 * already running then). So (higher xmax, then fewer running) orders reads as they were taken,
 * and two reads at the same point saw the same commits. (An abort moves the point on with no new
 * commit: a later read with the same content, which is harmless.)
 *
 * What this rests on: READ COMMITTED, one snapshot per statement, which pg_current_snapshot()
 * returns; a read through the pool, on the primary, outside any transaction that has written (a
 * transaction's own xid is left out of its own snapshot, so its point would claim commits it has
 * not seen). And xids only go up within one run of the server: a point also names the server's
 * start, and points of different starts (a restart, a failover, another cluster whose xids are
 * lower) are not compared.
 */
export interface ReadPoint {
  /** When the server that gave the point started (ms since the epoch). */
  since: number;
  xmax: number;
  running: number;
}

/**
 * A select list giving the statement's read point as "readSince", "readXmax" and "readRunning";
 * put it in a subquery joined once (it is one value per statement). xid8 comes as text: as a
 * number it is exact below 2^53 transactions.
 */
export const READ_POINT_COLUMNS = `(extract(epoch FROM pg_postmaster_start_time()) * 1000)::float8 AS "readSince",
  pg_snapshot_xmax(pg_current_snapshot())::text::float8 AS "readXmax",
  (SELECT count(*) FROM pg_snapshot_xip(pg_current_snapshot()))::int AS "readRunning"`;

export const readPointOf = (row: { readSince: number; readXmax: number; readRunning: number }): ReadPoint => ({
  since: row.readSince,
  xmax: row.readXmax,
  running: row.readRunning,
});

/** Whether `a` was read before `b` (false when they saw the same commits, or are of different server starts). */
export const readBefore = (a: ReadPoint, b: ReadPoint): boolean =>
  a.since === b.since && (a.xmax < b.xmax || (a.xmax === b.xmax && a.running > b.running));
