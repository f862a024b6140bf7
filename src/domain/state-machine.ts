import type { Db } from '../db.ts';
import { Prisma, type Transition } from '../generated/prisma/client.ts';
import { TransitionStatus as S } from '../generated/prisma/enums.ts';
import type { TransitionStatus } from '../generated/prisma/enums.ts';
import { TERMINAL } from './batches.ts';

/**
 * The one place that changes a transition's status within a generation run.
 *
 *   QUEUED → SUBMITTED → IN_PROGRESS → COMPLETED | FAILED | CANCELED
 *   SUBMITTED | IN_PROGRESS → QUEUED   (a transient failure: the next attempt waits for a slot)
 *
 * Every write is conditional on the run and the current status (optimistic: of two workers, one
 * wins, the other gets null and stops), bumps `version`, mirrors the status into the run's
 * BatchItem in the same statement, and is announced after commit. Starting a run (DRAFT or an
 * ended status → QUEUED with run + 1) is `startRuns`, below.
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
  submittedAt?: Date | null;
  startedAt?: Date | null | 'now-if-null';
  completedAt?: Date | null;
}

export interface ChangeGuard {
  /** Only when the row still carries this request id (null: none recorded yet). */
  falRequestId?: string | null;
  /** Only from these statuses (a subset of ALLOWED_FROM[to]). */
  from?: readonly TransitionStatus[];
}

/** Announces committed changes (src/events); the state machine never publishes before commit. */
export interface ChangeListener {
  transitionsChanged(rows: readonly Transition[], info: { completedBatchIds: readonly string[] }): void | Promise<void>;
}

export interface StateDeps {
  db: Db;
  changes?: ChangeListener;
}

const COLUMNS: Record<keyof ChangeData, string> = {
  attempts: 'attempts',
  falRequestId: 'falRequestId',
  queuePosition: 'queuePosition',
  errorCode: 'errorCode',
  errorMessage: 'errorMessage',
  videoUrl: 'videoUrl',
  submittedAt: 'submittedAt',
  startedAt: 'startedAt',
  completedAt: 'completedAt',
};

const utcNow = Prisma.sql`(now() AT TIME ZONE 'UTC')`;

function setClause(data: ChangeData): Prisma.Sql[] {
  const sets: Prisma.Sql[] = [];
  for (const key of Object.keys(data) as Array<keyof ChangeData>) {
    const value = data[key];
    if (value === undefined) continue;
    const column = Prisma.raw(`"${COLUMNS[key]}"`);
    if (value === 'increment') sets.push(Prisma.sql`${column} = ${column} + 1`);
    else if (value === 'now-if-null') sets.push(Prisma.sql`${column} = coalesce(${column}, ${utcNow})`);
    else sets.push(Prisma.sql`${column} = ${value}`);
  }
  return sets;
}

/**
 * Moves one transition of run `run` to `to`, if allowed from where it is now. Returns the new row,
 * or null when the row moved on (another worker, a cancel, a newer run): the caller stops.
 */
export async function changeTransition(
  deps: StateDeps,
  ref: { id: string; run: number },
  to: TransitionStatus,
  data: ChangeData = {},
  guard: ChangeGuard = {},
): Promise<Transition | null> {
  const from = guard.from ?? ALLOWED_FROM[to];
  if (from.length === 0) throw new Error(`No change leads to ${to} within a run.`);
  const requestGuard =
    guard.falRequestId === undefined
      ? Prisma.empty
      : Prisma.sql`AND "falRequestId" IS NOT DISTINCT FROM ${guard.falRequestId}`;
  const sets = [
    Prisma.sql`"status" = ${to}::"TransitionStatus"`,
    Prisma.sql`"version" = "version" + 1`,
    Prisma.sql`"updatedAt" = ${utcNow}`,
    ...setClause(data),
  ];
  // One statement: the row and its BatchItem change together, in one round trip.
  const rows = await deps.db.$queryRaw<Transition[]>`
    WITH changed AS (
      UPDATE "Transition" SET ${Prisma.join(sets, ', ')}
      WHERE "id" = ${ref.id}::uuid AND "run" = ${ref.run}
        AND "status" = ANY(${[...from]}::"TransitionStatus"[]) ${requestGuard}
      RETURNING *
    ), item AS (
      UPDATE "BatchItem" b SET "status" = c."status" FROM changed c
      WHERE b."batchId" = c."batchId" AND b."transitionId" = c."id" AND b."status" <> c."status"
    )
    SELECT * FROM changed`;
  const row = rows[0] ?? null;
  if (row) await announce(deps, [row]);
  return row;
}

/**
 * After terminal changes have committed, closes the batches with nothing left to run. Done in a
 * statement of its own: inside the change's statement, two items finishing at once would each see
 * the other as still running (same snapshot) and neither would close the batch.
 */
async function closeFinishedBatches(db: Db, rows: readonly Transition[]): Promise<string[]> {
  const batchIds = [...new Set(rows.filter((r) => TERMINAL.includes(r.status) && r.batchId).map((r) => r.batchId!))];
  if (batchIds.length === 0) return [];
  const closed = await db.$queryRaw<Array<{ id: string }>>`
    UPDATE "Batch" SET "completedAt" = ${utcNow}
    WHERE "id" = ANY(${batchIds}::uuid[]) AND "completedAt" IS NULL
      AND NOT EXISTS (
        SELECT 1 FROM "BatchItem" i
        WHERE i."batchId" = "Batch"."id" AND i."status" <> ALL(${[...TERMINAL]}::"TransitionStatus"[]))
    RETURNING "id"`;
  return closed.map((c) => c.id);
}

async function announce(deps: StateDeps, rows: readonly Transition[]) {
  const completedBatchIds = await closeFinishedBatches(deps.db, rows);
  await deps.changes?.transitionsChanged(rows, { completedBatchIds });
}

/**
 * Ends every unfinished transition of the given ids (and account) as CANCELED, in one statement.
 * Returns the rows that changed; ids already ended are left alone.
 */
export async function cancelTransitions(deps: StateDeps, accountId: string, ids: readonly string[]) {
  const open = [S.QUEUED, S.SUBMITTED, S.IN_PROGRESS];
  const rows = await deps.db.$queryRaw<Transition[]>`
    WITH changed AS (
      UPDATE "Transition" SET "status" = 'CANCELED', "version" = "version" + 1, "updatedAt" = ${utcNow},
        "completedAt" = ${utcNow}, "queuePosition" = NULL
      WHERE "id" = ANY(${[...ids]}::uuid[]) AND "accountId" = ${accountId}::uuid
        AND "status" = ANY(${open}::"TransitionStatus"[])
      RETURNING *
    ), item AS (
      UPDATE "BatchItem" b SET "status" = 'CANCELED' FROM changed c
      WHERE b."batchId" = c."batchId" AND b."transitionId" = c."id"
    )
    SELECT * FROM changed`;
  if (rows.length) await announce(deps, rows);
  return rows;
}

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
  return tx.$queryRaw<Transition[]>`
    UPDATE "Transition" SET "status" = 'QUEUED', "run" = "run" + 1, "version" = "version" + 1,
      "batchId" = ${batchId}::uuid, "attempts" = 0, "errorCode" = NULL, "errorMessage" = NULL,
      "falRequestId" = NULL, "queuePosition" = NULL, "videoUrl" = NULL, "queuedAt" = ${utcNow},
      "submittedAt" = NULL, "startedAt" = NULL, "completedAt" = NULL, "updatedAt" = ${utcNow}
    WHERE "id" = ANY(${[...ids]}::uuid[]) AND "accountId" = ${accountId}::uuid
      AND "status" = ANY(${[...onlyFrom]}::"TransitionStatus"[])
    RETURNING *`;
}

/** Announces rows changed inside a transaction that has now committed. */
export const announceCommitted = (deps: StateDeps, rows: readonly Transition[]) =>
  rows.length ? announce(deps, rows) : Promise.resolve();
