import type { Logger } from '../logger.ts';
import type { ImageDeps } from './images.ts';

/**
 * How long after its URL expired a direct upload's place is left alone: a PUT begun before the
 * expiry can end after it, and its client completes it then. After this, no PUT can start (both
 * the local driver's signed URL and S3's presigned one refuse it).
 */
export const UPLOAD_SWEEP_GRACE_MS = 60 * 60_000;

/** Rows taken per round, removed this many at once; a pass starts no round after its time is up. */
const PER_ROUND = 50;
const AT_ONCE = 10;
const PASS_MS = 10_000;
/**
 * An upload never completed is held while its file is removed, as completeImageUpload holds one
 * it checks (Image.leaseUntil): the two never work on one upload at once. Completed and refused
 * ones are not held: nothing completes them again, and a READY image's lease is its upload to
 * fal's storage (run-images.ts), which the sweep must not stand in the way of.
 */
const SWEEP_LEASE_MS = 5 * 60_000;
/** A file that could not be removed is tried again this much later, behind the others. */
const RETRY_MS = 15 * 60_000;

/**
 * Clears where direct uploads land, once `graceMs` have passed since their URL expired, and
 * returns how many it cleared. Each row taken is moved back in the sweep's order first (so no
 * other pass takes it meanwhile, and one whose file cannot be removed does not stay first), then
 * its file is removed, then:
 * - an upload never completed (createImageUpload without completeImageUpload, still PENDING) is
 *   deleted: before, its row and file stayed until its account was deleted;
 * - a completed or refused one forgets its upload place. Completion removed the file already, but
 *   a presigned S3 URL takes a PUT until it expires, and such a file stayed in storage.
 * A removal that fails leaves the row to a pass RETRY_MS later.
 */
export async function sweepExpiredUploads(
  deps: Pick<ImageDeps, 'db' | 'media'> & { logger: Logger },
  graceMs = UPLOAD_SWEEP_GRACE_MS,
): Promise<number> {
  const passEnds = Date.now() + PASS_MS;
  let cleared = 0;
  let failed = 0;
  while (Date.now() < passEnds) {
    // Times are sent as parameters: the columns hold UTC without a zone, and the session's
    // TimeZone would shift now(). The partial index Image_upload_expiry_idx holds only the rows
    // with an upload place to clear. uploadExpiresAt is the sweep's own from here: the URLs carry
    // their expiry in their signature.
    const now = new Date();
    const lease = new Date(now.getTime() + SWEEP_LEASE_MS);
    const retryAt = new Date(now.getTime() - graceMs + RETRY_MS);
    const taken = await deps.db.$queryRaw<Array<{ id: string; uploadKey: string | null; pending: boolean }>>`
      UPDATE "Image" i
      SET "uploadExpiresAt" = ${retryAt},
          "leaseUntil" = CASE WHEN i."status" = 'PENDING'::"ImageStatus" THEN ${lease} ELSE i."leaseUntil" END
      FROM (
        SELECT "id" FROM "Image"
        WHERE "uploadExpiresAt" IS NOT NULL AND "uploadExpiresAt" < ${new Date(now.getTime() - graceMs)}
          AND ("status" <> 'PENDING'::"ImageStatus" OR "leaseUntil" IS NULL OR "leaseUntil" < ${now})
        ORDER BY "uploadExpiresAt" LIMIT ${PER_ROUND}
        FOR UPDATE SKIP LOCKED
      ) expired
      WHERE i."id" = expired."id"
      RETURNING i."id", i."uploadKey", i."status" = 'PENDING'::"ImageStatus" AS "pending"`;
    if (taken.length === 0) break;
    const storage = await deps.media.storage();
    const removed: typeof taken = [];
    const kept: string[] = [];
    for (let i = 0; i < taken.length; i += AT_ONCE) {
      await Promise.all(
        taken.slice(i, i + AT_ONCE).map(async (row) => {
          try {
            if (row.uploadKey) await storage.remove(row.uploadKey);
            removed.push(row);
          } catch (err) {
            if (row.pending) kept.push(row.id);
            failed += 1;
            if (failed === 1) deps.logger.warn({ err, imageId: row.id }, 'could not remove an expired upload; a later pass tries again');
          }
        }),
      );
    }
    const ids = (pending: boolean) => removed.filter((row) => row.pending === pending).map((row) => row.id);
    const [pending, done] = [ids(true), ids(false)];
    if (pending.length > 0) cleared += (await deps.db.image.deleteMany({ where: { id: { in: pending }, leaseUntil: lease } })).count;
    if (done.length > 0) {
      cleared += (await deps.db.image.updateMany({ where: { id: { in: done }, uploadExpiresAt: retryAt }, data: { uploadKey: null, uploadExpiresAt: null } })).count;
    }
    // Let go at once: a completion may take it meanwhile.
    if (kept.length > 0) await deps.db.image.updateMany({ where: { id: { in: kept }, leaseUntil: lease }, data: { leaseUntil: null } });
    if (taken.length < PER_ROUND) break;
  }
  if (failed > 1) deps.logger.warn({ failed }, 'expired uploads whose file could not be removed; later passes try again');
  return cleared;
}
