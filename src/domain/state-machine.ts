import DataLoader from 'dataloader';
import type { Db, Sql } from '../db.ts';
import { Prisma, type Transition } from '../generated/prisma/client.ts';
import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import type { TransitionStatus } from '../generated/prisma/enums.ts';
import { GAVE_UP, OPEN, RUN_STARTABLE } from './statuses.ts';

/**
 * The one place that changes a transition's status within a generation run.
 *
 *   QUEUED → SUBMITTED → IN_PROGRESS → COMPLETED | FAILED | CANCELED
 *   SUBMITTED | IN_PROGRESS → QUEUED   (a transient failure: the next attempt waits for a slot)
 *
 * Every write is conditional on the run and the current status (optimistic: of two workers, one
 * wins, the other gets null and stops), bumps `version`, is a single-row statement (the batch
 * item follows the row, see batchCounts), and is announced after commit. Starting a run (DRAFT
 * or an ended status → QUEUED with run + 1) is `startRuns`, below.
 */
export const ALLOWED_FROM: Record<TransitionStatus, readonly TransitionStatus[]> = {
  DRAFT: [],
  QUEUED: [S.SUBMITTED, S.IN_PROGRESS],
  SUBMITTED: [S.QUEUED, S.SUBMITTED],
  IN_PROGRESS: [S.SUBMITTED, S.IN_PROGRESS],
  COMPLETED: [S.SUBMITTED, S.IN_PROGRESS],
  FAILED: [S.QUEUED, S.SUBMITTED, S.IN_PROGRESS],
  CANCELED: [S.QUEUED, S.SUBMITTED, S.IN_PROGRESS],
};

/** Fields a change may set besides the status. Dates are UTC, as Prisma stores them. */
export interface ChangeData {
  attempts?: number | 'increment';
  falRequestId?: string | null;
  queuePosition?: number | null;
  errorCode?: string | null;
  errorMessage?: string | null;
  videoUrl?: string | null;
  falVideoUrl?: string | null;
  videoKey?: string | null;
  posterUrl?: string | null;
  posterKey?: string | null;
  posterFailedAt?: Date | null;
  submittedAt?: Date | null;
  startedAt?: Date | null | 'now-if-null';
  completedAt?: Date | null;
}

export interface ChangeGuard {
  /** Only when the row still carries this request id (null: none recorded yet). */
  falRequestId?: string | null;
  /** Only from these statuses (a subset of ALLOWED_FROM[to]). */
  from?: readonly TransitionStatus[];
  /** Only while no provider result has been recorded (a re-delivered result changes nothing). */
  noResultYet?: boolean;
  /** Only while the run has no poster (two renders of one poster write once, announce once). */
  noPosterYet?: boolean;
}

/** A transition's column names: what an event says changed. */
export type TransitionField = keyof Transition;

/**
 * Announces committed changes (src/events); the state machine never publishes before commit.
 * `fields` names the columns the change wrote (status and version always among them), so an
 * event carries only those; without it the whole row is news (a row just made).
 */
export interface ChangeListener {
  transitionsChanged(rows: readonly Transition[], fields?: readonly TransitionField[]): void | Promise<void>;
}

export interface StateDeps {
  db: Db;
  sql: Sql;
  events?: ChangeListener;
}

const COLUMNS: Record<keyof ChangeData, string> = {
  attempts: 'attempts',
  falRequestId: 'falRequestId',
  queuePosition: 'queuePosition',
  errorCode: 'errorCode',
  errorMessage: 'errorMessage',
  videoUrl: 'videoUrl',
  falVideoUrl: 'falVideoUrl',
  videoKey: 'videoKey',
  posterUrl: 'posterUrl',
  posterKey: 'posterKey',
  posterFailedAt: 'posterFailedAt',
  submittedAt: 'submittedAt',
  startedAt: 'startedAt',
  completedAt: 'completedAt',
};

const UTC_NOW = `(now() AT TIME ZONE 'UTC')`;
const UTC_SQL = Prisma.raw(UTC_NOW);

/** Builds "col = $n" assignments; Dates travel as ISO strings (UTC, as Prisma stores them). */
function assignments(data: ChangeData, values: unknown[]): string[] {
  const sets: string[] = [];
  for (const key of Object.keys(data) as Array<keyof ChangeData>) {
    const value = data[key];
    if (value === undefined) continue;
    const column = `"${COLUMNS[key]}"`;
    if (value === 'increment') sets.push(`${column} = ${column} + 1`);
    else if (value === 'now-if-null') sets.push(`${column} = coalesce(${column}, ${UTC_NOW})`);
    else {
      values.push(value instanceof Date ? value.toISOString() : value);
      sets.push(`${column} = $${values.length}`);
    }
  }
  return sets;
}

/**
 * Moves one transition of run `run` (or the one holding a fal request id) to `to`, if allowed
 * from where it is now. Returns the new row, or null when the row moved on (another worker, a
 * cancel, a newer run): the caller stops.
 */
export async function changeTransition(
  deps: StateDeps,
  ref: { id: string; run: number } | { falRequestId: string },
  to: TransitionStatus,
  data: ChangeData = {},
  guard: ChangeGuard = {},
): Promise<Transition | null> {
  const from = guard.from ?? ALLOWED_FROM[to];
  if (from.length === 0) throw new Error(`No change leads to ${to} within a run.`);
  const values: unknown[] = [to, [...from]];
  const sets = [`"status" = $1::"TransitionStatus"`, `"version" = "version" + 1`, `"updatedAt" = ${UTC_NOW}`, ...assignments(data, values)];
  let where: string;
  if ('id' in ref) {
    values.push(ref.id, ref.run);
    where = `"id" = $${values.length - 1}::uuid AND "run" = $${values.length}`;
  } else {
    values.push(ref.falRequestId);
    where = `"falRequestId" = $${values.length}`;
  }
  if (guard.falRequestId !== undefined) {
    values.push(guard.falRequestId);
    where += ` AND "falRequestId" IS NOT DISTINCT FROM $${values.length}`;
  }
  if (guard.noResultYet) where += ` AND "falVideoUrl" IS NULL`;
  if (guard.noPosterYet) where += ` AND "posterKey" IS NULL`;
  const [row] = await deps.sql.query<Transition>(
    `UPDATE "Transition" SET ${sets.join(', ')} WHERE ${where} AND "status" = ANY($2::"TransitionStatus"[]) RETURNING *`,
    values,
  );
  if (!row) return null;
  const written = (Object.keys(data) as Array<keyof ChangeData>).filter((key) => data[key] !== undefined);
  await announce(deps, [row], ['status', 'version', 'updatedAt', ...written]);
  return row;
}

/**
 * The row as the state machine writes it (plain SQL: read on every step of every generation).
 * The reads asked for in one turn of the event loop go out as one statement: a worker starting a
 * round of 100 jobs reads their 100 rows in one round trip, not 100 queued for the pool's
 * connections. Nothing is kept: each read is of a moment after it was asked for, as before.
 */
export function loadTransition(deps: Pick<StateDeps, 'sql'>, id: string): Promise<Transition | null> {
  // An id not in the form PostgreSQL returns (ours all are) is read alone, as PostgreSQL reads it.
  if (!CANONICAL_UUID.test(id)) return readTransition(deps.sql, id);
  let reader = readers.get(deps.sql);
  if (!reader) readers.set(deps.sql, (reader = new DataLoader((ids) => readTransitions(deps.sql, ids), { cache: false, maxBatchSize: 1_000 })));
  return reader.load(id);
}

const CANONICAL_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/**
 * One batching reader per pool. Not for a transaction: its reads must go out in the order its
 * statements are written, so they use its own query, unbatched. A row read once for several
 * callers is the same object for each: nobody changes it.
 */
const readers = new WeakMap<object, DataLoader<string, Transition | null>>();

async function readTransition(sql: Pick<Sql, 'query'>, id: string): Promise<Transition | null> {
  const [row] = await sql.query<Transition>(`SELECT * FROM "Transition" WHERE "id" = $1::uuid`, [id]);
  return row ?? null;
}

async function readTransitions(sql: Pick<Sql, 'query'>, ids: readonly string[]): Promise<Array<Transition | null>> {
  if (ids.length === 1) return [await readTransition(sql, ids[0]!)];
  const rows = await sql.query<Transition>(`SELECT * FROM "Transition" WHERE "id" = ANY($1::uuid[])`, [ids]);
  const byId = new Map(rows.map((row) => [row.id, row]));
  return ids.map((id) => byId.get(id) ?? null);
}

async function announce(deps: StateDeps, rows: readonly Transition[], fields?: readonly TransitionField[]) {
  await deps.events?.transitionsChanged(rows, fields);
}

/**
 * Ends every unfinished transition of the given ids (and account) as CANCELED, in one statement.
 * Returns the rows that changed; ids already ended are left alone, and so are those fal has
 * already finished (their video is paid for and on its way into storage: see `alreadyGenerated`).
 */
export async function cancelTransitions(deps: StateDeps, accountId: string, ids: readonly string[]) {
  // Rows are locked in id order first, as claims lock them (src/domain/claims.ts): a cancel and a
  // batch of claims over the same rows wait for each other instead of deadlocking.
  const rows = await deps.sql.query<Transition>(
    `WITH locked AS (
       SELECT "id" FROM "Transition" WHERE "id" = ANY($1::uuid[]) AND "accountId" = $2::uuid ORDER BY "id" FOR UPDATE
     )
     UPDATE "Transition" t SET "status" = 'CANCELED', "version" = t."version" + 1, "updatedAt" = ${UTC_NOW},
       "completedAt" = ${UTC_NOW}, "queuePosition" = NULL
     FROM locked
     WHERE t."id" = locked."id" AND t."status" = ANY($3::"TransitionStatus"[])
       AND NOT (${ALREADY_GENERATED})
     RETURNING t.*`,
    [[...ids], accountId, [...OPEN]],
  );
  if (rows.length) await announce(deps, rows, ['status', 'version', 'updatedAt', 'completedAt', 'queuePosition']);
  return rows;
}

/**
 * A run whose video fal has finished (the result is recorded, or fal said the request completed
 * and its output is being read): canceling it now would throw away a video already paid for.
 */
const ALREADY_GENERATED = `t."falVideoUrl" IS NOT NULL OR EXISTS (
  SELECT 1 FROM "FalRequest" f WHERE f."requestId" = t."falRequestId" AND f."state" = 'ENDED' AND (f."outcome" IS NULL OR f."outcome" = 'OK'))`;

/** Whether fal has already finished this open transition's video (a cancel would be a CONFLICT). */
export async function alreadyGenerated(deps: Pick<StateDeps, 'sql'>, id: string): Promise<boolean> {
  const [row] = await deps.sql.query<{ generated: boolean }>(
    `SELECT (${ALREADY_GENERATED}) AS generated FROM "Transition" t WHERE t."id" = $1::uuid`,
    [id],
  );
  return row?.generated === true;
}

/**
 * Starts a new generation run for transitions of one account: QUEUED, run + 1, a clean slate of
 * run fields, in `batchId`. With `onlyFrom` a retry can be limited (e.g. FAILED and CANCELED).
 * Runs inside the caller's transaction; announce the returned rows after it commits.
 */
export async function startRuns(
  tx: Prisma.TransactionClient,
  accountId: string,
  ids: readonly string[],
  batchId: string,
  onlyFrom: readonly TransitionStatus[] = RUN_STARTABLE,
): Promise<Transition[]> {
  // The transitions first, in id order, as claims and deletions lock them: the item update below
  // would otherwise lock a batch item before its transition, and meet a deletion holding the
  // transition and waiting for that item (its cascade): a deadlock, one of the two an INTERNAL.
  await tx.$queryRaw`
    SELECT "id" FROM "Transition" WHERE "id" = ANY(${[...ids]}::uuid[]) AND "accountId" = ${accountId}::uuid ORDER BY "id" FOR UPDATE`;
  // A run leaving a batch freezes its outcome in that batch's item first.
  await tx.$executeRaw`
    UPDATE "BatchItem" i SET "status" = t."status" FROM "Transition" t
    WHERE t."id" = ANY(${[...ids]}::uuid[]) AND t."accountId" = ${accountId}::uuid
      AND i."transitionId" = t."id" AND i."batchId" = t."batchId" AND t."batchId" <> ${batchId}::uuid
      AND t."status" = ANY(${[...onlyFrom]}::"TransitionStatus"[])`;
  return tx.$queryRaw<Transition[]>`
    UPDATE "Transition" SET "status" = 'QUEUED', "run" = "run" + 1, "version" = "version" + 1,
      "batchId" = ${batchId}::uuid, "attempts" = 0, "errorCode" = NULL, "errorMessage" = NULL,
      "falRequestId" = NULL, "queuePosition" = NULL, "videoUrl" = NULL, "falVideoUrl" = NULL,
      "videoKey" = NULL, "posterUrl" = NULL, "posterKey" = NULL, "posterFailedAt" = NULL, "queuedAt" = ${UTC_SQL},
      "submittedAt" = NULL, "startedAt" = NULL, "completedAt" = NULL, "updatedAt" = ${UTC_SQL}
    WHERE "id" = ANY(${[...ids]}::uuid[]) AND "accountId" = ${accountId}::uuid
      AND "status" = ANY(${[...onlyFrom]}::"TransitionStatus"[])
      AND NOT ${AWAITS_LATE_VIDEO}
    RETURNING *`;
}

/**
 * A run that gave up on its request at a time limit while fal still runs it: its video, paid for,
 * may still come and is the run's (ledger.recordResult). No new run starts meanwhile: it would be
 * paid for again, and the video that comes would have no run to take it.
 */
const AWAITS_LATE_VIDEO = Prisma.raw(
  `(coalesce(${GAVE_UP}, false) AND EXISTS (SELECT 1 FROM "FalRequest" f WHERE f."requestId" = "Transition"."falRequestId" AND f."state" = 'ACCEPTED'))`,
);

export const LATE_VIDEO_CONFLICT =
  'fal is still running the request this transition gave up on at its time limit (FAL_TIMEOUT or FAL_QUEUE_TIMEOUT): ' +
  'its video is paid for and becomes this transition’s if it comes. Generate it again once fal has ended that request.';

/** The ids among `ids` whose run waits for such a late video (for the CONFLICT that says so). */
export async function awaitingLateVideo(tx: Prisma.TransactionClient | Db, ids: readonly string[]): Promise<Set<string>> {
  const rows = await tx.$queryRaw<Array<{ id: string }>>`SELECT "id" FROM "Transition" WHERE "id" = ANY(${[...ids]}::uuid[]) AND ${AWAITS_LATE_VIDEO}`;
  return new Set(rows.map((r) => r.id));
}

/** The columns startRuns writes. */
export const RUN_START_FIELDS: readonly TransitionField[] = [
  'status', 'run', 'version', 'batchId', 'attempts', 'errorCode', 'errorMessage', 'falRequestId', 'queuePosition', 'videoUrl',
  'falVideoUrl', 'videoKey', 'posterUrl', 'posterKey', 'posterFailedAt', 'queuedAt', 'submittedAt', 'startedAt', 'completedAt', 'updatedAt',
];

/** Announces rows changed inside a transaction that has now committed; `fields` as for ChangeListener. */
export const announceCommitted = (deps: StateDeps, rows: readonly Transition[], fields?: readonly TransitionField[]) =>
  rows.length ? announce(deps, rows, fields) : Promise.resolve();
