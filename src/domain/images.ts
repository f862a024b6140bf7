import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import type { Config } from '../config.ts';
import type { Db } from '../db.ts';
import type { Image } from '../generated/prisma/client.ts';
import { ImageStatus } from '../generated/prisma/enums.ts';
import { ACCEPTED_CONTENT_TYPES, inspectImage, normalizeImage, type ImageRuleReason, type ImageViolation } from '../media/image-rules.ts';
import type { MediaService } from '../media/service.ts';
import { roundedExpiry, signResource } from '../media/signed-urls.ts';
import { AppError, notFound } from './errors.ts';
import type { StoredImages } from './stored-images.ts';
import { parseInput } from './transition-input.ts';

/**
 * Images of an account: uploaded through GraphQL (multipart), or uploaded directly to storage
 * (createImageUpload, then completeImageUpload). Every image passes the rules (image-rules.ts)
 * before anything is stored, and is stored normalised (orientation applied, metadata removed,
 * JPEG or PNG) under `private/`: readable only through signed URLs.
 */
export interface ImageDeps {
  db: Db;
  media: MediaService;
  config: Pick<Config, 'images' | 'media'>;
}

/** How long a direct-upload URL may be used. */
export const UPLOAD_URL_TTL_MS = 15 * 60_000;
/** Image.url stays valid for at least this long (rounded up to the hour). */
export const READ_URL_TTL_SECONDS = 3600;
/** The path of the local driver's direct uploads on the API. */
export const LOCAL_UPLOAD_PATH = '/uploads/images/';

/** Where an account's images are stored, and where its direct uploads land before they are checked: one folder each per account, so its deletion removes them. */
export const imageFolder = (accountId: string) => `private/images/${accountId}/`;
export const uploadFolder = (accountId: string) => `private/uploads/${accountId}/`;
export const imageKey = (accountId: string, imageId: string, extension: string) => `${imageFolder(accountId)}${imageId}.${extension}`;
const uploadKey = (accountId: string, imageId: string) => `${uploadFolder(accountId)}${imageId}`;

/** A broken rule: BAD_USER_INPUT whose `extensions.reason` names it. */
export const imageRuleError = (violation: { reason: string; message: string }, fields: string[] = ['file']) =>
  new AppError('BAD_USER_INPUT', violation.message, { reason: violation.reason, fields });

/** Checks a local file, stores its normalised copy and records it READY; throws imageRuleError. */
export async function storeImageFile(
  deps: ImageDeps,
  accountId: string,
  file: string,
  options: { imageId?: string; field?: string } = {},
): Promise<Image> {
  const checked = await checkAndStore(deps, accountId, file, options.imageId ?? uuidv7());
  if (!checked.ok) throw imageRuleError(checked.violation, [options.field ?? 'file']);
  return deps.db.image.create({ data: { id: checked.id, accountId, status: ImageStatus.READY, ...checked.stored } });
}

export type StoredFields = Pick<Image, 'key' | 'contentType' | 'width' | 'height' | 'bytes'>;

/** Inspects, normalises and stores a file; a violation stores nothing. Shared with URL images. */
export async function checkAndStore<T = undefined>(
  deps: Pick<ImageDeps, 'media' | 'config'>,
  accountId: string,
  file: string,
  id: string,
  /** Run on the normalized file while it is stored (a worker's fal upload), its result returned as `also`. */
  alongside?: (file: string, contentType: string) => Promise<T>,
): Promise<{ ok: true; id: string; stored: StoredFields; also: T | undefined } | { ok: false; violation: ImageViolation }> {
  const { maxBytes } = deps.config.images;
  const inspected = await inspectImage(file, maxBytes);
  if (!inspected.ok) return inspected;
  const work = await deps.media.workdir('image');
  try {
    const output = join(work.dir, 'normalized');
    const normalized = await normalizeImage(file, output, inspected.facts, maxBytes);
    const key = imageKey(accountId, id, normalized.extension);
    // Both settle before the work directory goes: neither is left reading a removed file.
    const [put, along] = await Promise.allSettled([
      (await deps.media.storage()).put(key, output, normalized.contentType),
      alongside?.(output, normalized.contentType),
    ]);
    if (put.status === 'rejected') throw put.reason;
    if (along.status === 'rejected') throw along.reason;
    const also = along.value;
    return {
      ok: true,
      id,
      stored: { key, contentType: normalized.contentType, width: normalized.width, height: normalized.height, bytes: normalized.bytes },
      also,
    };
  } finally {
    await work.done();
  }
}

/** The account's image, READY or not; another account's is NOT_FOUND. */
export async function getImage(deps: Pick<ImageDeps, 'db'>, accountId: string, id: string): Promise<Image> {
  const image = await deps.db.image.findFirst({ where: { id, accountId } });
  if (!image) throw notFound('Image');
  return image;
}

/**
 * A transition's frame as a URL: the URL it was given, or a signed URL of its uploaded image,
 * whose storage key comes from the process' stored images (no read per row or per live event).
 */
export function frameUrl(deps: Pick<ImageDeps, 'media'> & { storedImages: StoredImages }, given: string | null, imageId: string | null): string | Promise<string> {
  return given ?? deps.storedImages.of(imageId!).then((image) => imageReadUrl(deps, image.key));
}

/** A signed URL that reads the stored file for at least an hour (the same URL within the hour). */
export async function imageReadUrl(deps: Pick<ImageDeps, 'media'>, key: string, minSeconds = READ_URL_TTL_SECONDS): Promise<string> {
  return (await deps.media.storage()).privateUrl(key, roundedExpiry(minSeconds));
}

const createUploadInput = z.object({
  contentType: z.string().trim().toLowerCase(),
  bytes: z.number().int().min(1, 'must be at least 1'),
});

/**
 * Offers a direct upload: a presigned S3 PUT, or a signed Segue URL for the local driver. The
 * declared type and size are checked now and again, against what arrived, at completion.
 */
export async function createImageUpload(deps: ImageDeps & { baseUrl: string }, accountId: string, raw: unknown) {
  const input = parseInput(createUploadInput, raw);
  if (!ACCEPTED_CONTENT_TYPES[input.contentType]) {
    throw imageRuleError({ reason: 'IMAGE_FORMAT', message: `${input.contentType} is not accepted; JPEG, PNG or WebP is.` }, ['contentType']);
  }
  const { maxBytes } = deps.config.images;
  if (input.bytes > maxBytes) {
    throw imageRuleError({ reason: 'IMAGE_TOO_LARGE', message: `${input.bytes} bytes is over the limit of ${maxBytes}.` }, ['bytes']);
  }
  const id = uuidv7();
  const key = uploadKey(accountId, id);
  const expiresAt = new Date(Date.now() + UPLOAD_URL_TTL_MS);
  const storage = await deps.media.storage();
  let target: { url: string; headers: Record<string, string> };
  if (storage.driver === 's3' && 'presignPut' in storage) {
    target = await (storage as import('../media/storage-s3.ts').S3Storage).presignPut(key, input.contentType, input.bytes, expiresAt);
  } else {
    const query = signResource(deps.config.images.urlSecret, 'upload', id, expiresAt);
    target = { url: `${deps.baseUrl}${LOCAL_UPLOAD_PATH}${id}?${query}`, headers: { 'content-type': input.contentType } };
  }
  await deps.db.image.create({
    data: {
      id,
      accountId,
      status: ImageStatus.PENDING,
      declaredContentType: input.contentType,
      declaredBytes: input.bytes,
      uploadKey: key,
      uploadExpiresAt: expiresAt,
    },
  });
  return {
    imageId: id,
    uploadUrl: target.url,
    headers: Object.entries(target.headers).map(([name, value]) => ({ name, value })),
    expiresAt,
  };
}

/** What a local direct upload may write: the image's pending upload, if the id is one. */
export async function pendingUpload(deps: Pick<ImageDeps, 'db'>, id: string) {
  const image = await deps.db.image.findUnique({ where: { id } });
  if (!image || image.status !== ImageStatus.PENDING || !image.uploadKey) return null;
  return image;
}

/** How long one completeImageUpload call holds an upload (its check takes seconds), and how long another call waits for it. */
const COMPLETE_LEASE_MS = 60_000;
const COMPLETE_WAIT_MS = 20_000;
const COMPLETE_POLL_MS = 100;
const COMPLETE_POLL_MAX_MS = 1_000;

/**
 * Checks what a direct upload brought: the size and type declared, then the rules. A mismatch or
 * a broken rule removes the upload, and the image ends FAILED with that verdict: nothing is
 * stored, and completing it again answers the same refusal. Completing an image that is already
 * READY returns it.
 *
 * One call checks an upload at a time (a lease on the row): a client retrying a slow call waits
 * for the first and gets its image, instead of checking the same file again and racing it (the
 * later one found the upload removed, or wrote its row over the first's).
 */
export async function completeImageUpload(deps: ImageDeps, accountId: string, id: string): Promise<Image> {
  const waitUntil = Date.now() + COMPLETE_WAIT_MS;
  for (let pause = COMPLETE_POLL_MS; ; pause = Math.min(pause * 2, COMPLETE_POLL_MAX_MS)) {
    const image = await getImage(deps, accountId, id);
    if (image.status === ImageStatus.READY && !image.sourceUrl) return image;
    // Refused, by this client's earlier call or the one this call waited for: the same verdict.
    if (image.status === ImageStatus.FAILED && !image.sourceUrl && image.errorCode) {
      throw refusal(image.errorCode, image.errorMessage);
    }
    if (image.status !== ImageStatus.PENDING || !image.uploadKey) throw notFound('Image');
    const now = new Date();
    // A lease run out is a call that died: taken over. One still running is waited for, and not
    // asked for again until it has run out.
    if (!image.leaseUntil || image.leaseUntil < now) {
      const lease = new Date(now.getTime() + COMPLETE_LEASE_MS);
      const { count } = await deps.db.image.updateMany({
        where: { id, status: ImageStatus.PENDING, uploadKey: image.uploadKey, OR: [{ leaseUntil: null }, { leaseUntil: { lt: now } }] },
        data: { leaseUntil: lease },
      });
      if (count === 1) return checkUpload(deps, accountId, image as Image & { uploadKey: string }, lease);
    }
    if (Date.now() + pause > waitUntil) throw new AppError('CONFLICT', 'Another call is still completing this upload; ask again in a moment.');
    await sleep(pause);
  }
}

/** completeImageUpload's check, under `lease`; every way out lets the lease go or ends the row. */
async function checkUpload(deps: ImageDeps, accountId: string, image: Image & { uploadKey: string }, lease: Date): Promise<Image> {
  const { id, uploadKey } = image;
  const ours = { id, leaseUntil: lease };
  const storage = await deps.media.storage();
  // The row first, under this call's lease only: a call that outlived its lease must not remove
  // the upload that another is now checking. The row keeps the verdict (FAILED, no file), so a
  // retried or waiting call answers it too.
  const discard = async (reason: ImageRuleReason | 'UPLOAD_MISMATCH', message: string): Promise<never> => {
    const { count } = await deps.db.image.updateMany({
      where: ours,
      data: {
        status: ImageStatus.FAILED,
        leaseUntil: null,
        checkedAt: new Date(),
        errorCode: reason,
        errorMessage: message,
      },
    });
    // A removal that fails, or a file a presigned S3 PUT puts back, is the sweep's
    // (expired-uploads.ts: the row keeps uploadKey until then): the refusal still answers.
    if (count === 1) await storage.remove(uploadKey).catch(() => undefined);
    throw refusal(reason, message);
  };
  const work = await deps.media.workdir('complete');
  try {
    const uploaded = await storage.head(uploadKey);
    if (!uploaded) {
      throw new AppError('BAD_USER_INPUT', 'Nothing was uploaded yet: PUT the file to uploadUrl first.', { reason: 'UPLOAD_MISSING', fields: ['id'] });
    }
    if (uploaded.size !== image.declaredBytes) {
      return await discard('UPLOAD_MISMATCH', `The upload is ${uploaded.size} bytes, not the ${image.declaredBytes} declared.`);
    }
    if (uploaded.contentType !== null && uploaded.contentType.toLowerCase() !== image.declaredContentType) {
      return await discard('UPLOAD_MISMATCH', `The upload was sent as ${uploaded.contentType}, not the ${image.declaredContentType} declared.`);
    }
    const file = await deps.media.localCopy(uploadKey, work.dir);
    const inspected = await inspectImage(file, deps.config.images.maxBytes);
    if (inspected.ok && ACCEPTED_CONTENT_TYPES[image.declaredContentType!] !== inspected.facts.format) {
      return await discard('UPLOAD_MISMATCH', `The upload is ${inspected.facts.format.toUpperCase()}, not the ${image.declaredContentType} declared.`);
    }
    const checked = inspected.ok ? await checkAndStore(deps, accountId, file, id) : inspected;
    if (!checked.ok) return await discard(checked.violation.reason, checked.violation.message);
    // The row first, the upload's removal after: a call that reads the row meanwhile finds it
    // READY, never PENDING with its upload gone.
    const [ready] = await deps.db.image.updateManyAndReturn({
      where: ours,
      data: { status: ImageStatus.READY, ...checked.stored, leaseUntil: null },
    });
    // No row: this call outlived its lease and another took the upload over; its verdict stands.
    if (!ready) return await completeImageUpload(deps, accountId, id);
    // The image is READY whatever happens now: an upload left behind (or put back by a presigned
    // S3 PUT) is the sweep's, and this call still answers with the image.
    await storage.remove(uploadKey).catch(() => undefined);
    return ready;
  } catch (error) {
    await deps.db.image.updateMany({ where: ours, data: { leaseUntil: null } }).catch(() => undefined);
    throw error;
  } finally {
    await work.done();
  }
}

/** A refused upload's verdict, as completeImageUpload answers it (every time). */
const refusal = (reason: string, message: string | null) => imageRuleError({ reason, message: message ?? 'The upload was refused.' }, ['id']);
