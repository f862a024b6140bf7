import type { Sql } from '../db.ts';
import type { FalRequest, Transition } from '../generated/prisma/client.ts';
import { announceCommitted, type StateDeps, type TransitionField } from './state-machine.ts';
import { GAVE_UP } from './statuses.ts';

/**
 * The ledger of submissions to fal (FalRequest): what Segue may be paying for, and what may be in
 * flight there. A row is written in the statement that claims a transition, before anything is
 * sent, so it is at once the FAL_CONCURRENCY slot and the budget reservation, both held in
 * PostgreSQL where a Redis wipe cannot lose them. From then on a row only moves forward:
 *
 *   SUBMITTING → ACCEPTED (fal gave it an id) → ENDED (fal said it is over)
 *              → UNCERTAIN (the answer was lost: fal may have it; a webhook can still name it)
 *              → REFUSED (fal refused it) · or the row goes (the submit never went out)
 *
 * SUBMITTING and ACCEPTED rows hold a slot; all but REFUSED count against the budget.
 */

/** One submission: which transition, run and attempt it is for (attempts count from 1 per run). */
export interface Submission {
  id: string;
  transitionId: string;
  accountId: string;
  run: number;
  attempt: number;
  model: string;
  costUsd: number;
}

/** The clock of a statement: Prisma's DateTime columns hold UTC without a time zone. */
const UTC_NOW = `(now() AT TIME ZONE 'UTC')`;

/**
 * Undoes a claim whose submit never went out (something failed before it was sent): the ledger
 * row goes and the transition is QUEUED again, as if the claim had not happened. Returns the row
 * when it changed; null when the claim never committed, or its submit was already sent.
 */
export async function unclaimSubmit(deps: StateDeps, submissionId: string): Promise<Transition | null> {
  const [row] = await deps.sql.query<Transition>(
    `WITH f AS (
       DELETE FROM "FalRequest" WHERE "id" = $1::uuid AND "state" = 'SUBMITTING' AND "requestId" IS NULL RETURNING *
     )
     UPDATE "Transition" t SET "status" = 'QUEUED', "attempts" = t."attempts" - 1, "version" = t."version" + 1,
       "submittedAt" = NULL, "updatedAt" = ${UTC_NOW}
     FROM f
     WHERE t."id" = f."transitionId" AND t."run" = f."run" AND t."attempts" = f."attempt" AND t."status" = 'SUBMITTED' AND t."falRequestId" IS NULL
     RETURNING t.*`,
    [submissionId],
  );
  if (row) await announceCommitted(deps, [row], ['status', 'attempts', 'version', 'submittedAt', 'updatedAt']);
  return row ?? null;
}

/**
 * fal accepted a submission: its request id goes into the ledger whatever became of the run
 * meanwhile, and onto the transition when the run still waits for it. Returns the transition when
 * it took the id, null otherwise (then the request belongs to no run: cancel it and follow it).
 */
export async function recordAccepted(
  deps: StateDeps,
  submission: Submission,
  requestId: string,
  queuePosition: number | null,
): Promise<Transition | null> {
  // By the submission's own id: the row is there since the claim, whatever became of its
  // transition (even deleted: the row stays, without it).
  const [row] = await deps.sql.query<Transition>(
    `WITH ledger AS (
       UPDATE "FalRequest" SET "requestId" = $2,
         "state" = CASE WHEN "state" = 'ENDED' THEN 'ENDED'::"FalRequestState" ELSE 'ACCEPTED'::"FalRequestState" END
       WHERE "id" = $1::uuid
       RETURNING "transitionId"
     ), missing AS (
       INSERT INTO "FalRequest" ("id", "requestId", "accountId", "transitionId", "run", "attempt", "model", "costUsd", "state", "createdAt")
       SELECT $1::uuid, $2, $3::uuid, t."id", $5, $6, $7, $8::numeric, 'ACCEPTED', ${UTC_NOW}
       FROM (SELECT 1) one LEFT JOIN "Transition" t ON t."id" = $4::uuid
       WHERE NOT EXISTS (SELECT 1 FROM ledger)
       ON CONFLICT DO NOTHING
       RETURNING "transitionId"
     )
     UPDATE "Transition" SET "falRequestId" = $2, "queuePosition" = $9, "version" = "version" + 1, "updatedAt" = ${UTC_NOW}
     WHERE "id" = $4::uuid AND "run" = $5 AND "attempts" = $6 AND "status" = 'SUBMITTED' AND "falRequestId" IS NULL
       AND (EXISTS (SELECT 1 FROM ledger) OR EXISTS (SELECT 1 FROM missing))
     RETURNING *`,
    [
      submission.id,
      requestId,
      submission.accountId,
      submission.transitionId,
      submission.run,
      submission.attempt,
      submission.model,
      submission.costUsd,
      queuePosition,
    ],
  );
  if (row) await announceCommitted(deps, [row], ['falRequestId', 'queuePosition', 'version', 'updatedAt']);
  return row ?? null;
}

/** The submit's answer was lost: fal may have accepted it. It no longer holds a slot. */
export async function markUncertain(deps: Pick<StateDeps, 'sql'>, submissionId: string) {
  await deps.sql.query(`UPDATE "FalRequest" SET "state" = 'UNCERTAIN' WHERE "id" = $1::uuid AND "state" = 'SUBMITTING'`, [submissionId]);
}

/** fal refused the submit (it surely did not accept it): nothing to pay, no slot held. */
export async function markRefused(deps: Pick<StateDeps, 'sql'>, submissionId: string) {
  await deps.sql.query(
    `UPDATE "FalRequest" SET "state" = 'REFUSED', "endedAt" = ${UTC_NOW}
     WHERE "id" = $1::uuid AND "state" IN ('SUBMITTING', 'UNCERTAIN') AND "requestId" IS NULL`,
    [submissionId],
  );
}

export type RequestOutcome = 'OK' | 'ERROR' | 'CANCELED' | 'LOST';

/**
 * fal said the request is over (its slot frees); the outcome when known, or later. Returns the
 * request's transition when this call changed the ledger row, null when nothing changed.
 */
export async function markEnded(deps: Pick<StateDeps, 'sql'>, requestId: string, outcome: RequestOutcome | null) {
  const [row] = await deps.sql.query<{ transitionId: string | null }>(
    `UPDATE "FalRequest" SET "state" = 'ENDED', "endedAt" = coalesce("endedAt", ${UTC_NOW}), "outcome" = coalesce($2, "outcome")
     WHERE "requestId" = $1 AND ("state" <> 'ENDED' OR ("outcome" IS NULL AND $2::text IS NOT NULL))
     RETURNING "transitionId"`,
    [requestId, outcome],
  );
  return row ? { transitionId: row.transitionId } : null;
}

/**
 * Notes that Segue asks fal to cancel the request, and why; the first reason stays unless
 * `replace` (a run that overran its queue limit, then its run limit). Returns the ledger row (when
 * the cancel was first asked, its reason, and whether this call asked first), or null for an
 * unknown request.
 */
export async function noteCancelRequested(deps: Pick<StateDeps, 'sql'>, requestId: string, reason: string, options: { replace?: boolean } = {}) {
  const [row] = await deps.sql.query<Pick<FalRequest, 'cancelRequestedAt' | 'cancelReason' | 'state'> & { first: boolean }>(
    `UPDATE "FalRequest" f SET
       "cancelReason" = CASE WHEN $3::boolean THEN $2 ELSE coalesce(f."cancelReason", $2) END,
       "cancelRequestedAt" = CASE WHEN $3::boolean AND f."cancelReason" IS DISTINCT FROM $2 THEN ${UTC_NOW}
                                  ELSE coalesce(f."cancelRequestedAt", ${UTC_NOW}) END
     FROM (SELECT "id", "cancelRequestedAt" IS NULL AS first FROM "FalRequest" WHERE "requestId" = $1) old
     WHERE f."id" = old."id"
     RETURNING f."cancelRequestedAt", f."cancelReason", f."state", old.first`,
    [requestId, reason, options.replace === true],
  );
  return row ?? null;
}

/** The ledger row of a request id. */
export async function loadRequest(deps: Pick<StateDeps, 'sql'>, requestId: string): Promise<FalRequest | null> {
  const [row] = await deps.sql.query<FalRequest>(`SELECT * FROM "FalRequest" WHERE "requestId" = $1`, [requestId]);
  return row ?? null;
}

/** The ledger row of one attempt of a run. */
export async function loadSubmission(deps: Pick<StateDeps, 'sql'>, transitionId: string, run: number, attempt: number): Promise<FalRequest | null> {
  const [row] = await deps.sql.query<FalRequest>(
    `SELECT * FROM "FalRequest" WHERE "transitionId" = $1::uuid AND "run" = $2 AND "attempt" = $3`,
    [transitionId, run, attempt],
  );
  return row ?? null;
}

/**
 * Requests fal accepted that no running transition follows (a run canceled, superseded, or given
 * up while fal kept it): someone must follow each to its end, so its slot frees and the
 * transition can submit again. In random order (through the index of open rows), so requests fal
 * does not answer for cannot starve the others.
 */
export function orphanRequests(sql: Pick<Sql, 'query'>, limit: number): Promise<FalRequest[]> {
  return sql.query<FalRequest>(
    `SELECT f.* FROM "FalRequest" f LEFT JOIN "Transition" t ON t."id" = f."transitionId"
     WHERE f."state" = 'ACCEPTED'
       AND (t."id" IS NULL OR t."falRequestId" IS DISTINCT FROM f."requestId" OR t."status" NOT IN ('SUBMITTED', 'IN_PROGRESS'))
     ORDER BY random() LIMIT $1`,
    [limit],
  );
}

/** Submissions whose answer can no longer come (their worker died mid-submit): UNCERTAIN, no slot. */
export async function expireStaleSubmissions(sql: Pick<Sql, 'query'>, submitAnswerMs: number): Promise<number> {
  const rows = await sql.query(
    `UPDATE "FalRequest" f SET "state" = 'UNCERTAIN'
     WHERE f."state" = 'SUBMITTING' AND f."createdAt" <= ${UTC_NOW} - $1::int * interval '1 millisecond'
     RETURNING 1`,
    [submitAnswerMs],
  );
  return rows.length;
}

/** What recordResult found, besides the row it changed. */
export interface RecordedResult {
  /** The row that now holds the video URL; null when no row was running with that request and no result. */
  row: Transition | null;
  /** The submission the ledger holds the request under (ended by the same statement); null when the id is not in the ledger. */
  submission: { transitionId: string | null; run: number; attempt: number } | null;
  /** `row` is a run that had given up on the request (a time limit, or its result unreadable): nothing tracks it, its copy is to be queued. */
  late: boolean;
  /** A transition names the request as its own (its current or last run's). */
  known: boolean;
}

/**
 * fal has the video of the run holding `requestId`: its URL goes on the row (the copy into
 * storage follows) and the request is over in the ledger, in one statement. Only a row still
 * running with that request id and no result yet changes, so a re-delivered result changes nothing.
 * The same statement says where the ledger holds the request, so a webhook that comes after the
 * tracker has read the result (or comes again) is answered with no further query.
 *
 * A run that gave up on the request (FAILED: at its time limit, the request canceled at fal but run
 * to the end; or after its result could not be read) takes the video too: it is paid for. The row goes back to IN_PROGRESS and its
 * batch, closed when the run failed, is open again until the copy completes it, all in this
 * statement, so neither a crash nor a query ever finds a paid video dropped or a closed batch with
 * an item running. The batch row is written even when it looks open: a close under way waits for
 * this statement, or this one for it and then reopens what it closed (as a retry locks it).
 */
export async function recordResult(deps: StateDeps, requestId: string, videoUrl: string): Promise<RecordedResult> {
  const [result] = await deps.sql.query<Partial<Transition> & { ledgerTransitionId: string | null; ledgerRun: number | null; ledgerAttempt: number | null; ledgerKnown: boolean; ledgerUnsettled: boolean | null; wasLate: boolean | null }>(
    `WITH ledger AS (
       UPDATE "FalRequest" SET "state" = 'ENDED', "outcome" = 'OK', "endedAt" = coalesce("endedAt", ${UTC_NOW})
       WHERE "requestId" = $1
       RETURNING "transitionId" AS "ledgerTransitionId", "run" AS "ledgerRun", "attempt" AS "ledgerAttempt"
     ), recorded AS (
       UPDATE "Transition" SET "status" = 'IN_PROGRESS', "falVideoUrl" = $2, "startedAt" = coalesce("startedAt", ${UTC_NOW}),
         "queuePosition" = NULL, "version" = "version" + 1, "updatedAt" = ${UTC_NOW}
       WHERE "falRequestId" = $1 AND "status" IN ('SUBMITTED', 'IN_PROGRESS') AND "falVideoUrl" IS NULL
       RETURNING *, false AS "wasLate"
     ), ${TAKE_LATE}
     SELECT l.*, EXISTS (SELECT 1 FROM "Transition" WHERE "falRequestId" = $1) AS "ledgerKnown",
       (SELECT "state" <> 'ENDED' OR "outcome" IS DISTINCT FROM 'OK' FROM "FalRequest" WHERE "requestId" = $1) AS "ledgerUnsettled", r.*
     FROM (SELECT 1) one LEFT JOIN ledger l ON true LEFT JOIN (SELECT * FROM recorded UNION ALL SELECT * FROM late) r ON true`,
    [requestId, videoUrl],
  );
  const { ledgerTransitionId, ledgerRun, ledgerAttempt, ledgerKnown, ledgerUnsettled, wasLate, ...changed } = result!;
  let row = changed.id ? (changed as Transition) : null;
  let late = wasLate === true;
  if (!row && ledgerUnsettled && ledgerKnown) {
    // The run was giving up on the request as the statement began: its FAILED, not yet
    // committed, kept the row from both updates, and nothing else would take the video: the
    // request was open (a time limit's give-up), or ended with no video recorded (outcome NULL,
    // ERROR, CANCELED or LOST: the worker notes fal's end before it reads the result, so a
    // give-up on that read). Taken now that the FAILED has committed. A video whose recording
    // had committed when this statement began (outcome OK: a webhook after the worker's read, or
    // fal's again) costs no second statement. (Rare otherwise: a request of a canceled run, or
    // one whose recording was still under way as this statement began.)
    const [taken] = await deps.sql.query<Transition & { wasLate: boolean }>(`WITH ${TAKE_LATE} SELECT * FROM late`, [requestId, videoUrl]);
    if (taken) {
      const { wasLate: _, ...takenRow } = taken;
      row = takenRow;
      late = true;
    }
  }
  if (row) await announceCommitted(deps, [row], late ? LATE_FIELDS : RESULT_FIELDS);
  return {
    row,
    late,
    submission: ledgerRun === null ? null : { transitionId: ledgerTransitionId, run: ledgerRun, attempt: ledgerAttempt! },
    known: ledgerKnown,
  };
}

/**
 * The CTEs that give a video to a run that gave up on its request ($1, the video $2) and reopen
 * its batch; the batch row is written even when it looks open (see recordResult).
 */
const TAKE_LATE = `late AS (
       UPDATE "Transition" SET "status" = 'IN_PROGRESS', "falVideoUrl" = $2, "errorCode" = NULL, "errorMessage" = NULL,
         "completedAt" = NULL, "queuePosition" = NULL, "version" = "version" + 1, "updatedAt" = ${UTC_NOW}
       WHERE "falRequestId" = $1 AND ${GAVE_UP}
       RETURNING *, true AS "wasLate"
     ), reopened AS (
       UPDATE "Batch" b SET "completedAt" = NULL FROM late WHERE b."id" = late."batchId"
     )`;

const RESULT_FIELDS: readonly TransitionField[] = ['status', 'falVideoUrl', 'startedAt', 'queuePosition', 'version', 'updatedAt'];
const LATE_FIELDS: readonly TransitionField[] = ['status', 'falVideoUrl', 'errorCode', 'errorMessage', 'completedAt', 'queuePosition', 'version', 'updatedAt'];

/**
 * A provider callback names the submission it answers (transition, run, attempt, authenticated by
 * its token) and brings the request id: when that submission has no id yet (its answer was lost,
 * or is still on its way) the id goes into the ledger, and onto the transition if the run still
 * waits for exactly that attempt. A request of another run is only recorded, never adopted.
 */
export async function adoptRequest(
  deps: StateDeps,
  submission: { transitionId: string; run: number; attempt: number },
  requestId: string,
): Promise<{ recorded: boolean; row: Transition | null; wasUncertain: boolean }> {
  const [result] = await deps.sql.query<{ recorded: boolean; previous: string | null } & Partial<Transition>>(
    `WITH old AS (
       SELECT "id", "state" FROM "FalRequest"
       WHERE "transitionId" = $1::uuid AND "run" = $2 AND "attempt" = $3 AND "requestId" IS NULL
         AND "state" IN ('SUBMITTING', 'UNCERTAIN', 'REFUSED')
       FOR UPDATE
     ), ledger AS (
       UPDATE "FalRequest" f SET "requestId" = $4, "state" = 'ACCEPTED' FROM old WHERE f."id" = old."id"
       RETURNING old."state" AS previous
     ), adopted AS (
       UPDATE "Transition" SET "falRequestId" = $4, "version" = "version" + 1, "updatedAt" = ${UTC_NOW}
       WHERE "id" = $1::uuid AND "run" = $2 AND "attempts" = $3 AND "status" = 'SUBMITTED' AND "falRequestId" IS NULL
         AND EXISTS (SELECT 1 FROM ledger)
       RETURNING *
     )
     SELECT EXISTS (SELECT 1 FROM ledger) AS recorded, (SELECT previous FROM ledger) AS previous, a.*
     FROM (SELECT 1) one LEFT JOIN adopted a ON true`,
    [submission.transitionId, submission.run, submission.attempt, requestId],
  );
  const recorded = result?.recorded === true;
  const wasUncertain = result?.previous === 'UNCERTAIN' || result?.previous === 'REFUSED';
  if (!result?.id) return { recorded, row: null, wasUncertain };
  const { recorded: _recorded, previous: _previous, ...row } = result;
  await announceCommitted(deps, [row as Transition], ['falRequestId', 'version', 'updatedAt']);
  return { recorded, row: row as Transition, wasUncertain };
}

/**
 * Requests in flight longer than any bound Segue keeps (`maxAgeMs`): fal never said they ended and
 * no status call could tell. They stop holding a slot (LOST); the log says which, for a person to check.
 */
export function abandonStaleRequests(sql: Pick<Sql, 'query'>, maxAgeMs: number): Promise<Array<Pick<FalRequest, 'requestId' | 'transitionId'>>> {
  return sql.query(
    `UPDATE "FalRequest" f SET "state" = 'ENDED', "outcome" = 'LOST', "endedAt" = ${UTC_NOW}
     WHERE f."state" = 'ACCEPTED' AND f."createdAt" <= ${UTC_NOW} - $1::bigint * interval '1 millisecond'
     RETURNING f."requestId", f."transitionId"`,
    [maxAgeMs],
  );
}
