import type { Sql } from '../db.ts';

/**
 * Posters whose job failed its last attempt (a storage outage longer than the job's retries, a
 * video ffmpeg cannot decode). The transition stays COMPLETED without a poster; the failure is
 * noted on its row, which takes it out of the reconciler's sweep for lost poster jobs, and the
 * poster is tried again each day for POSTER_RETRY_DAYS after its video completed: what failed for
 * an outage then passes, and a video ffmpeg cannot read costs a job's few runs a day, for a
 * bounded time. Bookkeeping only: no status or version change, nothing announced (the API does
 * not show it).
 */

/** How long after its last failure a poster is tried again. */
export const POSTER_RETRY_MS = 24 * 3_600_000;
/** For how long after its video completed a failed poster is tried again. */
export const POSTER_RETRY_DAYS = 30;

type Run = { id: string; run: number };

const UTC_NOW = `(now() AT TIME ZONE 'UTC')`;

/**
 * The poster of this run failed for good (at `at`, when its job failed; now by default); false
 * when the row has moved on (another run, a poster made, deleted) or was noted already.
 */
export async function notePosterFailed(sql: Pick<Sql, 'query'>, ref: Run, at?: Date): Promise<boolean> {
  const rows = await sql.query<{ id: string }>(
    `UPDATE "Transition" SET "posterFailedAt" = coalesce($3::timestamp, ${UTC_NOW})
     WHERE "id" = $1::uuid AND "run" = $2 AND "status" = 'COMPLETED' AND "posterKey" IS NULL AND "posterFailedAt" IS NULL
     RETURNING "id"`,
    [ref.id, ref.run, at ? at.toISOString() : null],
  );
  return rows.length > 0;
}

export type NotedFailure = Run & { posterFailedAt: Date };

/** Failed posters due for another try (noted at least `retryMs` ago, video younger than POSTER_RETRY_DAYS), oldest note first. */
export function postersDueAgain(sql: Pick<Sql, 'query'>, limit: number, retryMs = POSTER_RETRY_MS): Promise<NotedFailure[]> {
  // The awaiting-poster partial index's own condition, so the planner uses it: it holds the
  // videos still without a poster, failed or not.
  return sql.query<NotedFailure>(
    `SELECT "id", "run", "posterFailedAt" FROM "Transition"
     WHERE "status" = 'COMPLETED' AND "posterKey" IS NULL AND "videoKey" IS NOT NULL
       AND "posterFailedAt" <= ${UTC_NOW} - $1::bigint * interval '1 millisecond'
       AND "completedAt" > ${UTC_NOW} - interval '${POSTER_RETRY_DAYS} days'
     ORDER BY "posterFailedAt" LIMIT ${Math.trunc(limit)}`,
    [retryMs],
  );
}

/**
 * The poster of this run has its job again: it waits for a poster as a new video does. Only the
 * note that was read: one the new job's own last failure wrote meanwhile stays.
 */
export async function clearPosterFailure(sql: Pick<Sql, 'query'>, noted: NotedFailure): Promise<void> {
  await sql.query(`UPDATE "Transition" SET "posterFailedAt" = NULL WHERE "id" = $1::uuid AND "run" = $2 AND "posterFailedAt" = $3::timestamp`, [
    noted.id,
    noted.run,
    noted.posterFailedAt.toISOString(),
  ]);
}
