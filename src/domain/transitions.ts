import { v7 as uuidv7 } from 'uuid';
import type { Config } from '../config.ts';
import type { Db, Sql } from '../db.ts';
import { reserveWithinBudget } from './costs.ts';
import type { Prisma, Transition } from '../generated/prisma/client.ts';
import { TransitionStatus } from '../generated/prisma/enums.ts';
import { createBatch, queueInBatch } from './batches.ts';
import { insertBatchItems, insertTransitions } from './bulk-inserts.ts';
import { badInput, conflict, notFound, pathsOf } from './errors.ts';
import { idempotent, type IdempotencyRecord } from './idempotency.ts';
import { assertImagesUsable } from './transition-images.ts';
import { launchRuns, type LaunchDeps } from './launch.ts';
import { awaitingLateVideo, LATE_VIDEO_CONFLICT, RUN_START_FIELDS } from './state-machine.ts';
import { RUN_STARTABLE } from './statuses.ts';
import {
  assertPublicUrls,
  createTransitionsInput,
  generateBatchInput,
  parseInput,
  type CreateTransitionsInput,
  type GenerateBatchInput,
} from './transition-input.ts';

export type ServiceDeps = LaunchDeps & {
  config: Pick<Config, 'pricePerSecondUsd' | 'fal' | 'http'> & { media: Pick<Config['media'], 'allowPrivateNetwork'> };
};

/** The price a budget is checked against. */
export const pricingOf = (config: ServiceDeps['config']) => ({ pricePerSecondUsd: config.pricePerSecondUsd, model: config.fal.model });

/** Loads rows by id, in the order of the ids. */
async function transitionsInOrder(db: Db, ids: readonly string[]) {
  const rows = await db.transition.findMany({ where: { id: { in: [...ids] } } });
  const byId = new Map(rows.map((row) => [row.id, row]));
  return ids.map((id) => byId.get(id)!);
}

const loadRecord = async (db: Db, record: IdempotencyRecord) => ({
  transitions: await transitionsInOrder(db, record.transitionIds),
  batch: record.batchId ? await db.batch.findUniqueOrThrow({ where: { id: record.batchId } }) : null,
});

/**
 * Creates 1 to 100 transitions, all or nothing; with `generate` they start a batch at once.
 * The same idempotencyKey again returns the same transitions and batch and creates nothing.
 */
export async function createTransitions(deps: ServiceDeps, accountId: string, raw: unknown) {
  const input: CreateTransitionsInput = parseInput(createTransitionsInput, raw);
  assertPublicUrls(input, deps.config.media.allowPrivateNetwork);
  await assertImagesUsable(deps.db, accountId, input.transitions);
  const result = await idempotent(
    deps.db,
    { accountId, key: input.idempotencyKey, operation: 'createTransitions', input, ttlMs: deps.config.http.idempotencyTtlMs },
    async (tx) => {
      if (input.generate) {
        const seconds = input.transitions.reduce((sum, t) => sum + t.durationSeconds, 0);
        await reserveWithinBudget(tx, accountId, pricingOf(deps.config), seconds);
      }
      const batch = input.generate ? await createBatch(tx, accountId, input.idempotencyKey) : null;
      // Ids are made here, not by the database, so the result keeps the caller's order.
      const fields = input.transitions.map((t) => ({ ...t, id: uuidv7(), accountId }));
      const queued = batch ? { status: TransitionStatus.QUEUED, batchId: batch.id, run: 1, queuedAt: new Date() } : {};
      const transitions = await insertTransitions(tx, fields.map((f) => ({ ...f, ...queued })));
      if (batch) await insertBatchItems(tx, batch.id, fields.map((f) => f.id), TransitionStatus.QUEUED);
      return {
        record: { transitionIds: fields.map((f) => f.id), batchId: batch?.id ?? null },
        value: { transitions, batch },
      };
    },
    (record) => loadRecord(deps.db, record),
  );
  // New rows: the whole row is news.
  if (result.batch && !result.replayed) await launchRuns(deps, result.transitions);
  return result;
}

/** Starts a batch over existing, idle transitions of the caller, in the given order. */
export async function generateBatch(deps: ServiceDeps, accountId: string, raw: unknown) {
  const input: GenerateBatchInput = parseInput(generateBatchInput, raw);
  const ids = input.transitionIds;
  const duplicate = ids.findIndex((id, i) => ids.indexOf(id) !== i);
  if (duplicate >= 0) throw badInput('Each transition may appear only once in a batch.', [`transitionIds.${duplicate}`]);

  const result = await idempotent(
    deps.db,
    { accountId, key: input.idempotencyKey, operation: 'generateBatch', input, ttlMs: deps.config.http.idempotencyTtlMs },
    async (tx) => {
      const owned = await tx.transition.findMany({
        where: { id: { in: ids }, accountId },
        select: { id: true, status: true, durationSeconds: true },
      });
      if (owned.length !== ids.length) {
        const found = new Set(owned.map((t) => t.id));
        const missing = pathsOf('transitionIds', ids, (id) => !found.has(id));
        throw notFound(missing.length > 1 ? `${missing.length} transitions` : 'Transition', missing);
      }
      const seconds = owned.reduce((sum, t) => sum + t.durationSeconds, 0);
      await reserveWithinBudget(tx, accountId, pricingOf(deps.config), seconds);
      const batch = await createBatch(tx, accountId, input.idempotencyKey);
      const queued = await queueInBatch(tx, accountId, batch.id, ids);
      if (!queued) {
        const late = await awaitingLateVideo(tx, ids);
        if (late.size > 0) throw conflict(LATE_VIDEO_CONFLICT, { fields: pathsOf('transitionIds', ids, (id) => late.has(id)) });
        const busy = new Set(owned.filter((t) => !RUN_STARTABLE.includes(t.status)).map((t) => t.id));
        throw conflict('Some transitions are already being generated; cancel them or wait until they end.', {
          fields: pathsOf('transitionIds', ids, (id) => busy.has(id)),
        });
      }
      return { record: { transitionIds: ids, batchId: batch.id }, value: { batch, queued } };
    },
    async (record) => ({ batch: await deps.db.batch.findUniqueOrThrow({ where: { id: record.batchId! } }), queued: [] }),
  );
  await launchRuns(deps, result.queued, RUN_START_FIELDS);
  return { batch: result.batch, replayed: result.replayed };
}

/** `query` carries the API's selection (Pothos' include/select), so nested fields load at once. */
/** A Pothos (plugin-prisma) query: what the GraphQL selection needs loaded with the row. */
export type Selection<I, S> = { include?: I; select?: S };

export async function getTransition(
  deps: ServiceDeps,
  accountId: string,
  id: string,
  query: Selection<Prisma.TransitionInclude, Prisma.TransitionSelect> = {},
) {
  const transition = await deps.db.transition.findFirst({ ...query, where: { id, accountId } } as { where: Prisma.TransitionWhereInput });
  if (!transition) throw notFound('Transition');
  return transition;
}

export async function getBatch(
  deps: ServiceDeps,
  accountId: string,
  id: string,
  query: Selection<Prisma.BatchInclude, Prisma.BatchSelect> = {},
) {
  const batch = await deps.db.batch.findFirst({ ...query, where: { id, accountId } } as { where: Prisma.BatchWhereInput });
  if (!batch) throw notFound('Batch');
  return batch;
}

/** A batch's transitions in its order, each as it is now, and whether the batch has ended. */
export interface BatchSnapshot {
  rows: Transition[];
  completedAt: Date | null;
}

/**
 * The account's batch as a live stream starts from: its transitions and its end, read in one
 * statement, so both are of the same moment (a batch seen ended has every row of its end), and
 * checked to be the account's in the same read. NOT_FOUND when it is not.
 */
export async function batchSnapshot(deps: { sql: Pick<Sql, 'query'> }, accountId: string, batchId: string): Promise<BatchSnapshot> {
  const found = await deps.sql.query<Transition & { batchCompletedAt: Date | null }>(
    `SELECT b."completedAt" AS "batchCompletedAt", t.*
       FROM "Batch" b
       LEFT JOIN "BatchItem" i ON i."batchId" = b."id"
       LEFT JOIN "Transition" t ON t."id" = i."transitionId"
      WHERE b."id" = $1::uuid AND b."accountId" = $2::uuid
      ORDER BY i."position"`,
    [batchId, accountId],
  );
  if (found.length === 0) throw notFound('Batch');
  // An empty batch is its one row with no transition.
  const rows = found[0]!.id === null ? [] : found.map(({ batchCompletedAt: _, ...row }) => row as Transition);
  return { rows, completedAt: found[0]!.batchCompletedAt };
}
