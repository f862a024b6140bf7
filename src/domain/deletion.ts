import { z } from 'zod';
import type { Db } from '../db.ts';
import type { Transition } from '../generated/prisma/client.ts';
import { GeneratedTransitionStatus as G } from '../generated/prisma/enums.ts';
import type { Logger } from '../logger.ts';
import type { KeyRevocations } from './api-keys.ts';
import { conflict, notFound, pathsOf } from './errors.ts';
import { imageFolder, uploadFolder } from './images.ts';
import type { Deletion, DeletionListener } from './ports.ts';
import { OPEN } from './statuses.ts';
import { LIMITS, parseInput } from './transition-input.ts';

/**
 * Where a row's files live in storage: every file of a transition (each run's video, its poster)
 * under `transitions/<id>/`, of a combined video under `combined/<id>/` (the keys the copy and
 * media workers write). Deleting the folder deletes them all, older runs' files included.
 */
export const transitionFolder = (id: string) => `transitions/${id}/`;
export const combinedFolder = (id: string) => `combined/${id}/`;

/** Storage, as deletion needs it (src/media/service.ts implements it). */
export interface StoredFiles {
  removeFolders(prefixes: readonly string[]): Promise<number>;
}

export interface DeletionDeps {
  db: Db;
  media: StoredFiles;
  logger: Logger;
}

const deleteTransitionsInput = z.object({
  ids: z
    .array(z.uuid('must be a transition id'))
    .min(1, `must hold 1 to ${LIMITS.itemsPerCall} ids`)
    .max(LIMITS.itemsPerCall, `must hold 1 to ${LIMITS.itemsPerCall} ids`),
});

/** Files go after the rows' transaction committed; a failure leaves files, never rows without them. */
async function removeFiles(deps: DeletionDeps, folders: string[], context: Record<string, unknown>) {
  try {
    return await deps.media.removeFolders(folders);
  } catch (err) {
    deps.logger.error({ err, ...context, folders: folders.length }, 'rows deleted, but some of their files could not be removed');
    return 0;
  }
}

/**
 * deleteTransitions: deletes idle transitions of the account (DRAFT, COMPLETED, FAILED, CANCELED)
 * with their stored videos and posters, all or nothing. A queued or running one, or one a combined
 * video is being rendered from, is a CONFLICT and nothing changes. What fal billed stays in the
 * spend ledger (its rows lose their transition), combined videos already made keep their file,
 * batches left empty go, and so do idempotency records that would replay deleted rows. After the
 * commit, the live streams are told: a deleted transition's or batch's streams end, and the
 * batches that lost items send their new counts.
 */
export async function deleteTransitions(deps: DeletionDeps & { events: DeletionListener }, accountId: string, raw: unknown): Promise<{ deletedIds: string[]; files: number }> {
  const { ids } = parseInput(deleteTransitionsInput, raw);
  const unique = [...new Set(ids)];
  const deletion = await deps.db.$transaction(async (tx): Promise<Deletion> => {
    // Locked (in id order, as claims lock them), so no generateBatch or retry can start one of them while they go.
    const rows = await tx.$queryRaw<Array<Pick<Transition, 'id' | 'status' | 'batchId'>>>`
      SELECT "id", "status", "batchId" FROM "Transition"
      WHERE "id" = ANY(${unique}::uuid[]) AND "accountId" = ${accountId}::uuid
      ORDER BY "id" FOR UPDATE`;
    if (rows.length !== unique.length) {
      const found = new Set(rows.map((r) => r.id));
      const missing = pathsOf('ids', ids, (id) => !found.has(id));
      throw notFound(missing.length > 1 ? `${missing.length} transitions` : 'Transition', missing);
    }
    const running = new Set(rows.filter((r) => OPEN.includes(r.status)).map((r) => r.id));
    if (running.size > 0) {
      throw conflict('Queued or running transitions cannot be deleted; cancel them or wait until they end. Nothing was deleted.', {
        fields: pathsOf('ids', ids, (id) => running.has(id)),
      });
    }
    const rendering = await tx.generatedTransitionItem.findMany({
      where: { transitionId: { in: unique }, generatedTransition: { status: { in: [G.QUEUED, G.RUNNING] } } },
      select: { transitionId: true },
    });
    if (rendering.length > 0) {
      const used = new Set(rendering.map((r) => r.transitionId));
      throw conflict('A combined video is being made from some of these transitions; wait until it ends. Nothing was deleted.', {
        fields: pathsOf('ids', ids, (id) => used.has(id)),
      });
    }
    const batches = await tx.batchItem.findMany({ where: { transitionId: { in: unique } }, select: { batchId: true }, distinct: ['batchId'] });
    const batchIds = batches.map((b) => b.batchId);
    // Their batches locked too: two deletions that each take one of a batch's last items would
    // otherwise each still see the other's, and neither would delete the batch they empty. The
    // second now waits, and its delete below sees the first's committed.
    if (batchIds.length > 0) await tx.$queryRaw`SELECT "id" FROM "Batch" WHERE "id" = ANY(${batchIds}::uuid[]) ORDER BY "id" FOR UPDATE`;
    await tx.generatedTransitionItem.deleteMany({ where: { transitionId: { in: unique } } });
    await tx.$executeRaw`
      DELETE FROM "IdempotencyKey" WHERE "accountId" = ${accountId}::uuid AND "transitionIds" && ${unique}::uuid[]`;
    await tx.transition.deleteMany({ where: { id: { in: unique }, accountId } });
    const emptied =
      batchIds.length === 0
        ? []
        : await tx.$queryRaw<Array<{ id: string }>>`
            DELETE FROM "Batch" b WHERE b."id" = ANY(${batchIds}::uuid[])
              AND NOT EXISTS (SELECT 1 FROM "BatchItem" i WHERE i."batchId" = b."id")
            RETURNING b."id"`;
    const deletedBatchIds = new Set(emptied.map((b) => b.id));
    return {
      accountId,
      transitions: rows.map(({ id, batchId }) => ({ id, batchId })),
      changedBatchIds: batchIds.filter((id) => !deletedBatchIds.has(id)),
      deletedBatchIds: [...deletedBatchIds],
    };
  });
  // Committed: the deletion stands whatever the event bus says (its listener tries again while
  // Redis is away, and a subscriber that resubscribes meanwhile gets NOT_FOUND).
  await deps.events.deleted(deletion).catch((err: unknown) => deps.logger.warn({ err, accountId }, 'could not tell the live streams of a deletion'));
  const files = await removeFiles(deps, unique.map(transitionFolder), { accountId });
  return { deletedIds: unique, files };
}

export interface AccountDeletion {
  transitions: number;
  batches: number;
  combined: number;
  keys: number;
  files: number;
}

/**
 * Deletes an account with every row it owns (transitions, batches, combined videos, keys, ledger)
 * and its files (videos, posters, images, uploads). Its keys are announced revoked first, so every API instance closes their
 * connections at once. Queued or running work must be canceled before: CONFLICT otherwise.
 */
export async function deleteAccount(
  deps: DeletionDeps & { revocations: KeyRevocations },
  accountId: string,
): Promise<AccountDeletion> {
  const owned = await deps.db.$transaction(async (tx) => {
    const locked = await tx.$queryRaw<Array<{ id: string }>>`SELECT "id" FROM "Account" WHERE "id" = ${accountId}::uuid FOR UPDATE`;
    if (locked.length === 0) throw notFound('Account');
    const open = await tx.transition.count({ where: { accountId, status: { in: [...OPEN] } } });
    const rendering = await tx.generatedTransition.count({ where: { accountId, status: { in: [G.QUEUED, G.RUNNING] } } });
    if (open + rendering > 0) {
      throw conflict(`The account has work queued or running (${open} transitions, ${rendering} combined videos); cancel it first.`);
    }
    // A canceled run's request that fal is still running holds a fal slot and is followed by the
    // ledger until it ends: the account (and its ledger) can go only once fal has let go of it.
    const atFal = await tx.falRequest.count({ where: { accountId, state: { in: ['SUBMITTING', 'ACCEPTED'] } } });
    if (atFal > 0) {
      throw conflict(`fal is still running ${atFal} canceled request(s) of this account; try again once they have ended.`, { atFal });
    }
    const [transitions, combined, keys, batches] = await Promise.all([
      tx.transition.findMany({ where: { accountId }, select: { id: true } }),
      tx.generatedTransition.findMany({ where: { accountId }, select: { id: true } }),
      tx.apiKey.findMany({ where: { accountId }, select: { id: true } }),
      tx.batch.count({ where: { accountId } }),
    ]);
    // Combined videos hold their clips with a restricting key: they go first.
    await tx.generatedTransition.deleteMany({ where: { accountId } });
    await tx.account.delete({ where: { id: accountId } });
    return { transitions, combined, keys, batches };
  });
  await deps.revocations.revoked(owned.keys.map((k) => k.id));
  const files = await removeFiles(
    deps,
    [
      ...owned.transitions.map((t) => transitionFolder(t.id)),
      ...owned.combined.map((c) => combinedFolder(c.id)),
      // Its images, checked URL images too, and uploads never completed.
      imageFolder(accountId),
      uploadFolder(accountId),
    ],
    { accountId },
  );
  return { transitions: owned.transitions.length, batches: owned.batches, combined: owned.combined.length, keys: owned.keys.length, files };
}
