import type { Db } from '../db.ts';
import { ImageStatus } from '../generated/prisma/enums.ts';
import { notFound } from './errors.ts';
import type { TransitionInput } from './transition-input.ts';

/**
 * Transitions made from uploads: every frontImageId / tailImageId must be a finished upload of
 * the caller. Another account's image looks exactly like a missing one (NOT_FOUND), named by its
 * input path (`transitions.3.frontImageId`), never by the raw id.
 */
export async function assertImagesUsable(db: Db, accountId: string, transitions: readonly TransitionInput[]) {
  const wanted = new Set(transitions.flatMap((t) => [t.frontImageId, t.tailImageId]).filter((id): id is string => id !== null));
  if (wanted.size === 0) return;
  const found = await db.image.findMany({
    where: { id: { in: [...wanted] }, accountId, status: ImageStatus.READY, sourceUrl: null },
    select: { id: true },
  });
  const usable = new Set(found.map((image) => image.id));
  const missing = transitions.flatMap((t, i) =>
    (['frontImageId', 'tailImageId'] as const).flatMap((field) => (t[field] !== null && !usable.has(t[field]) ? [`transitions.${i}.${field}`] : [])),
  );
  if (missing.length > 0) throw notFound(missing.length > 1 ? `${missing.length} images` : 'Image', missing);
}
