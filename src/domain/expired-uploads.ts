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
 * The sweep's hold on the rows it takes, as completeImageUpload holds a row it checks: the two
 * never work on one upload at once. A row whose file could not be removed keeps it, so the passes
 * until it runs out take other rows rather than fail on the same ones first.
 */
const SWEEP_LEASE_MS = 15 * 60_000;

/**
 * Clears where direct uploads land, once `graceMs` have passed since their URL expired, and
 * returns how many it cleared. Each row is taken under a lease first, then its file removed, then:
 * - an upload never completed (createImageUpload without completeImageUpload, still PENDING) is
 *   deleted: before, its row and file stayed until its account was deleted;
 * - a completed or refused one forgets its upload place. Completion removed the file already, but
 *   a presigned S3 URL takes a PUT until it expires, and such a file stayed in storage.
 * A removal that fails leaves the row as it was, for a later pass.
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
    // with an upload place to clear.
    const now = new Date();
    const lease = new Date(now.getTime() + SWEEP_LEASE_MS);
    const taken = await deps.db.$queryRaw<Array<{ id: string; uploadKey: string | null; status: string }>>`
      UPDATE "Image" i SET "leaseUntil" = ${lease}
      FROM (
        SELECT "id" FROM "Image"
        WHERE "uploadExpiresAt" IS NOT NULL AND "uploadExpiresAt" < ${new Date(now.getTime() - graceMs)}
          AND ("leaseUntil" IS NULL OR "leaseUntil" < ${now})
        ORDER BY "uploadExpiresAt" LIMIT ${PER_ROUND}
        FOR UPDATE SKIP LOCKED
      ) expired
      WHERE i."id" = expired."id"
      RETURNING i."id", i."uploadKey", i."status"::text AS "status"`;
    if (taken.length === 0) break;
    const storage = await deps.media.storage();
    const removed: typeof taken = [];
    for (let i = 0; i < taken.length; i += AT_ONCE) {
      await Promise.all(
        taken.slice(i, i + AT_ONCE).map(async (row) => {
          try {
            if (row.uploadKey) await storage.remove(row.uploadKey);
            removed.push(row);
          } catch (err) {
            failed += 1;
            if (failed === 1) deps.logger.warn({ err, imageId: row.id }, 'could not remove an expired upload; a later pass tries again');
          }
        }),
      );
    }
    const ours = (status: 'PENDING' | 'done') => ({
      id: { in: removed.filter((row) => (row.status === 'PENDING') === (status === 'PENDING')).map((row) => row.id) },
      leaseUntil: lease,
    });
    const [pending, done] = [ours('PENDING'), ours('done')];
    if (pending.id.in.length > 0) cleared += (await deps.db.image.deleteMany({ where: pending })).count;
    if (done.id.in.length > 0) {
      cleared += (await deps.db.image.updateMany({ where: done, data: { uploadKey: null, uploadExpiresAt: null, leaseUntil: null } })).count;
    }
  }
  if (failed > 1) deps.logger.warn({ failed }, 'expired uploads whose file could not be removed; later passes try again');
  return cleared;
}
