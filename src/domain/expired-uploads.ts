import type { ImageDeps } from './images.ts';

/**
 * How long after its URL expired a direct upload's place is left alone: a PUT begun before the
 * expiry can end after it, and its client completes it then. After this, no PUT can arrive (both
 * the local driver's signed URL and S3's presigned one refuse it), so nothing the sweep removes
 * can come back.
 */
export const ABANDONED_UPLOAD_GRACE_MS = 60 * 60_000;

/** Uploads swept per pass (each is a storage call), and how many of those at once. */
const PER_PASS = 1_000;
const AT_ONCE = 10;

/**
 * Clears where direct uploads land, once `graceMs` have passed since their URL expired, and
 * returns how many it cleared. The file goes first: a removal that fails keeps the row as it is,
 * and the next pass tries again. Then:
 * - an upload never completed (createImageUpload without completeImageUpload, still PENDING) is
 *   deleted, unless a completeImageUpload call holds it (its lease): before, its row and file
 *   stayed until its account was deleted;
 * - a completed or refused one forgets its upload place. Completion removed the file already, but
 *   a presigned S3 URL takes a PUT until it expires, and such a file stayed in storage.
 */
export async function sweepExpiredUploads(deps: Pick<ImageDeps, 'db' | 'media'>, graceMs = ABANDONED_UPLOAD_GRACE_MS): Promise<number> {
  // The partial index Image_upload_expiry_idx holds only the rows with an upload place to clear.
  const expired = await deps.db.$queryRaw<Array<{ id: string; uploadKey: string | null }>>`
    SELECT "id", "uploadKey" FROM "Image"
    WHERE "uploadExpiresAt" IS NOT NULL AND "uploadExpiresAt" < ${new Date(Date.now() - graceMs)}
      AND ("leaseUntil" IS NULL OR "leaseUntil" < now())
    ORDER BY "uploadExpiresAt" LIMIT ${PER_PASS}`;
  if (expired.length === 0) return 0;
  const storage = await deps.media.storage();
  const cleared: string[] = [];
  for (let i = 0; i < expired.length; i += AT_ONCE) {
    await Promise.all(
      expired.slice(i, i + AT_ONCE).map(async ({ id, uploadKey }) => {
        if (uploadKey) await storage.remove(uploadKey);
        cleared.push(id);
      }).map((removal) => removal.catch(() => undefined)),
    );
  }
  if (cleared.length === 0) return 0;
  const unleased = { OR: [{ leaseUntil: null }, { leaseUntil: { lt: new Date() } }] };
  // Still PENDING and not taken by a completion meanwhile: one that took it found no file, and
  // answered that nothing was uploaded.
  const [deleted, forgotten] = await deps.db.$transaction([
    deps.db.image.deleteMany({ where: { id: { in: cleared }, status: 'PENDING', ...unleased } }),
    deps.db.image.updateMany({
      where: { id: { in: cleared }, status: { not: 'PENDING' }, uploadExpiresAt: { not: null } },
      data: { uploadKey: null, uploadExpiresAt: null },
    }),
  ]);
  return deleted.count + forgotten.count;
}
