import { createHash } from 'node:crypto';
import type { Db } from '../db.ts';
import type { Prisma } from '../generated/prisma/client.ts';
import { conflict } from './errors.ts';

export type Tx = Prisma.TransactionClient;

/** What a keyed request made, kept so that a repeat can answer with the same objects. */
export interface IdempotencyRecord {
  transitionIds: string[];
  batchId: string | null;
}

const hashRequest = (operation: string, request: unknown) =>
  createHash('sha256').update(operation).update('\0').update(JSON.stringify(request)).digest('hex');

export const isUniqueViolation = (error: unknown) =>
  typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'P2002';

/**
 * Runs `create` in one transaction, at most once per (account, key) within `ttlMs`
 * (IDEMPOTENCY_TTL_HOURS). A repeat of the same request answers `replay(record)` of what the first
 * one made; the same key with a different request is a CONFLICT. Two concurrent first calls race
 * on the primary key: the loser's transaction rolls back whole and it answers with the winner's
 * result. An expired key is forgotten (and the sweep deletes old ones), so it can be used anew.
 */
export async function idempotent<T>(
  db: Db,
  request: { accountId: string; key: string | null; operation: string; input: unknown; ttlMs: number },
  create: (tx: Tx) => Promise<{ record: IdempotencyRecord; value: T }>,
  replay: (record: IdempotencyRecord) => Promise<T>,
): Promise<T & { replayed: boolean }> {
  const { accountId, key, operation } = request;
  if (key === null) return { ...(await db.$transaction(create)).value, replayed: false };
  const requestHash = hashRequest(operation, request.input);

  const previous = async () => {
    const record = await db.idempotencyKey.findUnique({ where: { accountId_key: { accountId, key } } });
    if (!record) return null;
    if (record.createdAt.getTime() <= Date.now() - request.ttlMs) {
      await db.idempotencyKey.deleteMany({ where: { accountId, key, createdAt: record.createdAt } });
      return null;
    }
    if (record.operation !== operation || record.requestHash !== requestHash) {
      throw conflict('This idempotencyKey was already used for a different request.', { idempotencyKey: key });
    }
    return { ...(await replay(record)), replayed: true };
  };

  const found = await previous();
  if (found) return found;
  try {
    const made = await db.$transaction(async (tx) => {
      const result = await create(tx);
      await tx.idempotencyKey.create({ data: { accountId, key, operation, requestHash, ...result.record } });
      return result.value;
    });
    return { ...made, replayed: false };
  } catch (error) {
    if (!isUniqueViolation(error)) throw error;
    const winner = await previous();
    if (winner) return winner;
    throw error;
  }
}

/** Deletes keys older than `ttlMs`, oldest first, `batch` at a time (through the createdAt index). */
export async function sweepIdempotencyKeys(db: Db, ttlMs: number, batch = 1_000): Promise<number> {
  const before = new Date(Date.now() - ttlMs);
  let deleted = 0;
  for (;;) {
    const n = await db.$executeRaw`
      DELETE FROM "IdempotencyKey" k USING (
        SELECT "accountId", "key" FROM "IdempotencyKey" WHERE "createdAt" < ${before} ORDER BY "createdAt" LIMIT ${batch}
      ) old
      WHERE k."accountId" = old."accountId" AND k."key" = old."key"`;
    deleted += n;
    if (n < batch) return deleted;
  }
}
