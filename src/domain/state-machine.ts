import type { Db, Sql } from '../db.ts';
import { Prisma, type Transition } from '../generated/prisma/client.ts';
import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import type { TransitionStatus } from '../generated/prisma/enums.ts';

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
}

/** Announces committed changes (src/events); the state machine never publishes before commit. */
export interface ChangeListener {
  transitionsChanged(rows: readonly Transition[]): void | Promise<void>;
}

export interface StateDeps {
  db: Db;
  sql: Sql;
  changes?: ChangeListener;
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
  const [row] = await deps.sql.query<Transition>(
    `UPDATE "Transition" SET ${sets.join(', ')} WHERE ${where} AND "status" = ANY($2::"TransitionStatus"[]) RETURNING *`,
    values,
  );
  if (!row) return null;
  await announce(deps, [row]);
  return row;
}

/** The row as the state machine writes it (plain SQL: read on every step of every generation). */
export async function loadTransition(deps: Pick<StateDeps, 'sql'>, id: string): Promise<Transition | null> {
  const [row] = await deps.sql.query<Transition>(`SELECT * FROM "Transition" WHERE "id" = $1::uuid`, [id]);
  return row ?? null;
}

/** What a request fal accepted may cost, for the ledger. */
export interface LedgerEntry {
  model: string;
  costUsd: number | null;
}

/**
 * SUBMITTED without a request id → with it, and the request into the ledger (FalRequest), in one
 * statement: a request fal accepted is never on the row without being in the ledger, or the
 * reverse.
 */
export async function recordFalRequest(
  deps: StateDeps,
  ref: { id: string; run: number },
  requestId: string,
  queuePosition: number | null,
  ledger: LedgerEntry,
): Promise<Transition | null> {
  const [row] = await deps.sql.query<Transition>(
    `WITH changed AS (
       UPDATE "Transition" SET "version" = "version" + 1, "updatedAt" = ${UTC_NOW}, "falRequestId" = $1, "queuePosition" = $2
       WHERE "id" = $3::uuid AND "run" = $4 AND "status" = 'SUBMITTED' AND "falRequestId" IS NULL
       RETURNING *
     ), ledger AS (
       INSERT INTO "FalRequest" ("requestId", "accountId", "transitionId", "run", "attempt", "model", "costUsd")
       SELECT $1, c."accountId", c."id", c."run", c."attempts", $5, coalesce($6::numeric, 0) FROM changed c
       ON CONFLICT ("requestId") DO NOTHING
     )
     SELECT * FROM changed`,
    [requestId, queuePosition, ref.id, ref.run, ledger.model, ledger.costUsd],
  );
  if (!row) return null;
  await announce(deps, [row]);
  return row;
}

/** A request fal accepted that no row holds (canceled while it was being submitted): still spend. */
export async function recordOrphanFalRequest(
  deps: StateDeps,
  transition: Pick<Transition, 'id' | 'accountId' | 'run' | 'attempts'>,
  requestId: string,
  ledger: LedgerEntry,
) {
  await deps.sql.query(
    `INSERT INTO "FalRequest" ("requestId", "accountId", "transitionId", "run", "attempt", "model", "costUsd")
     VALUES ($1, $2::uuid, $3::uuid, $4, $5, $6, coalesce($7::numeric, 0)) ON CONFLICT ("requestId") DO NOTHING`,
    [requestId, transition.accountId, transition.id, transition.run, transition.attempts, ledger.model, ledger.costUsd],
  );
}

async function announce(deps: StateDeps, rows: readonly Transition[]) {
  await deps.changes?.transitionsChanged(rows);
}

/**
 * Ends every unfinished transition of the given ids (and account) as CANCELED, in one statement.
 * Returns the rows that changed; ids already ended are left alone.
 */
export async function cancelTransitions(deps: StateDeps, accountId: string, ids: readonly string[]) {
  const rows = await deps.sql.query<Transition>(
    `UPDATE "Transition" SET "status" = 'CANCELED', "version" = "version" + 1, "updatedAt" = ${UTC_NOW},
       "completedAt" = ${UTC_NOW}, "queuePosition" = NULL
     WHERE "id" = ANY($1::uuid[]) AND "accountId" = $2::uuid AND "status" = ANY($3::"TransitionStatus"[])
     RETURNING *`,
    [[...ids], accountId, [...OPEN]],
  );
  if (rows.length) await announce(deps, rows);
  return rows;
}

/** Statuses of a run under way (queued or at the provider): what a cancel stops. */
export const OPEN: readonly TransitionStatus[] = [S.QUEUED, S.SUBMITTED, S.IN_PROGRESS];

/** Statuses a new run can start from. */
export const RUN_STARTABLE: readonly TransitionStatus[] = [S.DRAFT, S.COMPLETED, S.FAILED, S.CANCELED];

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
      "videoKey" = NULL, "posterUrl" = NULL, "posterKey" = NULL, "queuedAt" = ${UTC_SQL},
      "submittedAt" = NULL, "startedAt" = NULL, "completedAt" = NULL, "updatedAt" = ${UTC_SQL}
    WHERE "id" = ANY(${[...ids]}::uuid[]) AND "accountId" = ${accountId}::uuid
      AND "status" = ANY(${[...onlyFrom]}::"TransitionStatus"[])
    RETURNING *`;
}

/** Announces rows changed inside a transaction that has now committed. */
export const announceCommitted = (deps: StateDeps, rows: readonly Transition[]) =>
  rows.length ? announce(deps, rows) : Promise.resolve();
