import type { ImageDeps } from './images.ts';

/**
 * How long after its URL expired a direct upload may still be completed: a PUT begun before the
 * expiry can end after it, and its client completes it then. After this, no PUT can arrive
 * (both the local driver's signed URL and S3's presigned one refuse it), so nothing the sweep
 * removes can be replaced.
 */
export const ABANDONED_UPLOAD_GRACE_MS = 60 * 60_000;

/** Uploads swept per pass (each is a storage call), and how many of those at once. */
const PER_PASS = 1_000;
const AT_ONCE = 10;

/**
 * Deletes direct uploads never completed (createImageUpload without completeImageUpload), once
 * `graceMs` have passed since their URL expired: the file a PUT may have left, then the row. Until
 * now such a PENDING image kept its row, and its file in storage, until its account was deleted.
 * The file goes first: a removal that fails keeps the row, and the next pass tries again. A row
 * that a completeImageUpload call holds (its lease) is left to that call. Returns how many went.
 */
export async function sweepAbandonedUploads(deps: Pick<ImageDeps, 'db' | 'media'>, graceMs = ABANDONED_UPLOAD_GRACE_MS): Promise<number> {
  // The partial index Image_upload_pending_idx holds only PENDING rows: a pass reads those.
  const expired = await deps.db.$queryRaw<Array<{ id: string; uploadKey: string }>>`
    SELECT "id", "uploadKey" FROM "Image"
    WHERE "status" = 'PENDING'::"ImageStatus" AND "uploadExpiresAt" < ${new Date(Date.now() - graceMs)}
      AND "uploadKey" IS NOT NULL AND ("leaseUntil" IS NULL OR "leaseUntil" < now())
    ORDER BY "uploadExpiresAt" LIMIT ${PER_PASS}`;
  if (expired.length === 0) return 0;
  const storage = await deps.media.storage();
  const removed: string[] = [];
  for (let i = 0; i < expired.length; i += AT_ONCE) {
    await Promise.all(
      expired.slice(i, i + AT_ONCE).map((upload) =>
        storage.remove(upload.uploadKey).then(
          () => removed.push(upload.id),
          () => undefined,
        ),
      ),
    );
  }
  if (removed.length === 0) return 0;
  // Still PENDING and not taken by a completion meanwhile: one that took it found no file, and
  // answers that nothing was uploaded.
  const { count } = await deps.db.image.deleteMany({
    where: { id: { in: removed }, status: 'PENDING', OR: [{ leaseUntil: null }, { leaseUntil: { lt: new Date() } }] },
  });
  return count;
}
