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
  return (await notePostersFailed(sql, [{ ...ref, at }])).length > 0;
}

/** notePosterFailed for many runs in one statement; the ids noted. */
export async function notePostersFailed(sql: Pick<Sql, 'query'>, failures: ReadonlyArray<Run & { at?: Date | undefined }>): Promise<string[]> {
  if (failures.length === 0) return [];
  const rows = await sql.query<{ id: string }>(
    `UPDATE "Transition" t SET "posterFailedAt" = coalesce(f."at", ${UTC_NOW})
     FROM unnest($1::uuid[], $2::int[], $3::timestamp[]) AS f("id", "run", "at")
     WHERE t."id" = f."id" AND t."run" = f."run" AND t."status" = 'COMPLETED' AND t."posterKey" IS NULL AND t."posterFailedAt" IS NULL
     RETURNING t."id"`,
    [failures.map((f) => f.id), failures.map((f) => f.run), failures.map((f) => (f.at ? f.at.toISOString() : null))],
  );
  return rows.map((row) => row.id);
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
 * These runs' posters are about to have their jobs again (the reconciler adds them after the
 * clear): each waits for its poster as a new video does. Only the note that was read is cleared:
 * a note is written only where none is, so the note of a new job that fails at once stays.
 */
export async function clearPosterFailures(sql: Pick<Sql, 'query'>, noted: readonly NotedFailure[]): Promise<void> {
  if (noted.length === 0) return;
  await sql.query(
    `UPDATE "Transition" t SET "posterFailedAt" = NULL
     FROM unnest($1::uuid[], $2::int[], $3::timestamp[]) AS n("id", "run", "at")
     WHERE t."id" = n."id" AND t."run" = n."run" AND t."posterFailedAt" = n."at"`,
    [noted.map((n) => n.id), noted.map((n) => n.run), noted.map((n) => n.posterFailedAt.toISOString())],
  );
}
