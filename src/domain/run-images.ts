import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { v7 as uuidv7 } from 'uuid';
import type { Config } from '../config.ts';
import type { Db } from '../db.ts';
import type { Image, Prisma, Transition } from '../generated/prisma/client.ts';
import { ImageStatus } from '../generated/prisma/enums.ts';
import type { Logger } from '../logger.ts';
import { isMediaError } from '../media/errors.ts';
import { inspectImage } from '../media/image-rules.ts';
import { isPublicBaseUrl } from '../media/public-url.ts';
import { assertFetchableUrl, downloadToFile } from '../media/safe-fetch.ts';
import type { MediaService } from '../media/service.ts';
import { checkAndStore, imageReadUrl } from './images.ts';

/**
 * "Prepare the run's images": what runs just before a run's first submit, so that nothing is
 * spent on images fal would refuse minutes later behind its queue.
 *
 * - URL images are fetched once (SSRF guard, size cap, timeout) and checked by the image rules.
 *   The verdict is a row of its own (Image with sourceUrl, unique per account and URL), claimed
 *   with a lease: across every worker process, one fetches and the others wait for its verdict,
 *   so a batch that uses one URL many times fetches it once. Verdicts are reused for
 *   IMAGE_CHECK_TTL_MS (failures for at most a minute, so a fixed URL is tried again soon).
 * - fal fetches images itself, so each image must be somewhere fal can reach. A public JPEG or PNG
 *   URL goes as it is. A WebP (converted), a URL on a private network, or an upload lives in
 *   Segue's storage: when Segue's own URLs are not public (FAL_IMAGE_UPLOAD=auto) or always, it
 *   is uploaded to fal's storage once, and the fal URL is kept on the image.
 * - The preview provider gets storage keys and reads the stored files directly.
 */
export interface FalUploader {
  upload(file: string, contentType: string, fileName: string): Promise<string>;
}

export interface RunImageDeps {
  db: Db;
  media: MediaService;
  config: Config;
  logger: Logger;
  falUploader(): FalUploader;
}

export interface PreparedImage {
  /** What the provider is given: a public URL, a signed Segue URL, or a fal storage URL. */
  url: string;
  /** The stored copy, when Segue holds one (the preview provider reads it directly). */
  key: string | null;
}

export type ImageFailureCode = 'IMAGE_UNAVAILABLE' | 'IMAGE_INVALID';

export type PreparedImages =
  | { ok: true; front: PreparedImage; tail: PreparedImage }
  | { ok: false; code: ImageFailureCode; message: string };

/** How long a claim on a row (a check, a fal upload) holds before another worker may take over. */
const LEASE_MS = 60_000;
const POLL_MS = 100;
const FAILURE_TTL_MS = 60_000;
/** fal storage URLs are reused this long, then uploaded again (fal's CDN does not keep files forever). */
const FAL_URL_TTL_MS = 7 * 24 * 3600_000;
/** A signed Segue URL given to fal must outlive fal's queue. */
const SUBMIT_URL_TTL_SECONDS = 24 * 3600;

export async function prepareRunImages(deps: RunImageDeps, transition: Transition, target: 'fal' | 'preview'): Promise<PreparedImages> {
  const sides = [
    { name: 'front', url: transition.frontImageUrl, id: transition.frontImageId },
    { name: 'tail', url: transition.tailImageUrl, id: transition.tailImageId },
  ] as const;
  // Both sides at once; the same URL on both sides is one row, one fetch.
  const images = await Promise.all(
    sides.map(async (side) => {
      if (side.id) return deps.db.image.findUniqueOrThrow({ where: { id: side.id } });
      return (
        verdicts.get(transition.accountId, side.url!, deps.config.images.checkTtlMs) ??
        once(checking, `${transition.accountId} ${side.url}`, () => checkUrlImage(deps, transition.accountId, side.url!, target))
      );
    }),
  );
  const failure = (image: Image, side: number): PreparedImages => ({
    ok: false,
    code: (image.errorCode as ImageFailureCode) ?? 'IMAGE_UNAVAILABLE',
    message: `${sides[side]!.name} image: ${image.errorMessage ?? 'unavailable'}`,
  });
  for (const [i, image] of images.entries()) {
    if (image.status === ImageStatus.FAILED) return failure(image, i);
  }
  const sidesReached = await Promise.allSettled(images.map((image) => reachable(deps, image, target)));
  const [front, tail] = sidesReached as [PromiseSettledResult<PreparedImage>, PromiseSettledResult<PreparedImage>];
  if (front.status === 'fulfilled' && tail.status === 'fulfilled') return { ok: true, front: front.value, tail: tail.value };
  // Checked again meanwhile (by another worker, its verdict's time up) and found wanting: the run
  // fails with that verdict, as it would have had the verdict come first (whatever happened to
  // the other side); trying again would only find it again.
  const errors = sidesReached.flatMap((side) => (side.status === 'rejected' ? [side.reason as unknown] : []));
  const wanting = errors.find((error): error is FoundWanting => error instanceof FoundWanting);
  if (!wanting) throw errors[0];
  verdicts.remember(wanting.image);
  return failure(wanting.image, images.findIndex((image) => image.id === wanting.image.id));
}

/** What a fal upload finds when a check that ran again meanwhile judged the image wanting. */
class FoundWanting extends Error {
  constructor(readonly image: Image) {
    super(`Image ${image.id} was checked again and found wanting: ${image.errorMessage ?? image.errorCode}`);
  }
}

/**
 * Verdicts on URL images this process has read or made, for as long as they may be reused: a
 * batch of a thousand items sharing two URLs reads the database for them once per process, not
 * four times per item. Fresh only (IMAGE_CHECK_TTL_MS for good ones, a minute for failures, as in
 * the database); bounded, least recently used first out.
 */
class VerdictCache {
  private readonly rows = new Map<string, Image>();
  constructor(private readonly capacity = 10_000) {}

  get(accountId: string, url: string, checkTtlMs: number): Image | null {
    const key = `${accountId} ${url}`;
    const row = this.rows.get(key);
    if (!row) return null;
    const ttl = row.status === ImageStatus.FAILED ? Math.min(FAILURE_TTL_MS, checkTtlMs) : checkTtlMs;
    if (!fresh(row.checkedAt, ttl)) {
      this.rows.delete(key);
      return null;
    }
    return row;
  }

  remember(row: Image) {
    if (!row.sourceUrl || row.status === ImageStatus.CHECKING) return;
    const key = `${row.accountId} ${row.sourceUrl}`;
    this.rows.delete(key);
    this.rows.set(key, row);
    if (this.rows.size > this.capacity) this.rows.delete(this.rows.keys().next().value!);
  }
}

const verdicts = new VerdictCache();

/** Verdicts a check made after its lease was taken over, written nowhere: never cached. */
const notWritten = new WeakSet<Image>();

/**
 * The checks and fal uploads this process has under way, by account and URL and by image id: the
 * jobs of a batch that start together and share an image wait on the one promise, learning the
 * answer the moment it is known, rather than each polling the row (the lease and polling remain
 * for other processes).
 */
const checking = new Map<string, Promise<Image>>();
const uploading = new Map<string, Promise<{ falUrl: string; recorded: boolean }>>();

function once<V>(inFlight: Map<string, Promise<V>>, key: string, start: () => Promise<V>): Promise<V> {
  let running = inFlight.get(key);
  if (!running) {
    running = start().finally(() => inFlight.delete(key));
    inFlight.set(key, running);
  }
  return running;
}

/** Where the provider can read an image from. */
async function reachable(deps: RunImageDeps, image: Image, target: 'fal' | 'preview'): Promise<PreparedImage> {
  if (!image.key) return { url: image.sourceUrl!, key: null };
  if (target === 'preview') return { url: await imageReadUrl(deps, image.key), key: image.key };
  if (!needsFalStorage(deps.config)) {
    return { url: await imageReadUrl(deps, image.key, SUBMIT_URL_TTL_SECONDS), key: image.key };
  }
  const { falUrl, recorded } = await once(uploading, image.id, () => uploadToFalOnce(deps, image));
  // Kept for the next runs only as the row holds it.
  if (recorded && image.sourceUrl && image.falUrl !== falUrl && !notWritten.has(image)) verdicts.remember({ ...image, falUrl, falUploadedAt: new Date() });
  return { url: falUrl, key: image.key };
}

/** Whether images in Segue's storage go to fal's storage for fal to read (FAL_IMAGE_UPLOAD). */
function needsFalStorage(config: Config): boolean {
  const mode = config.images.falUpload;
  return mode === 'always' || (mode === 'auto' && !storageIsPublic(config));
}

/** Whether fal could fetch Segue's own storage URLs. */
export function storageIsPublic(config: Config): boolean {
  const { storage } = config.media;
  if (storage.driver === 's3') return storage.endpoint === null || isPublicBaseUrl(storage.endpoint);
  return isPublicBaseUrl(storage.publicBaseUrl);
}

const fresh = (at: Date | null, ttlMs: number) => at !== null && Date.now() - at.getTime() < ttlMs;

/**
 * The image's fal URL, uploading it first when no worker has yet (one upload across processes),
 * and whether the row holds it (an upload that outlived its lease leaves the row to another).
 */
async function uploadToFalOnce(deps: RunImageDeps, image: Image): Promise<{ falUrl: string; recorded: boolean }> {
  const deadline = Date.now() + LEASE_MS * 2;
  for (let row = image; ; ) {
    // Checked again meanwhile by another worker: its verdict is waited for while the check runs.
    // A check that found the image wanting ends the run with its verdict (whatever fal URL the
    // row still holds); one that died or failed leaves nothing to upload, and a verdict that
    // needs no stored copy (the URL is public now) nothing either: the run's next try checks
    // the URL again, or takes the newer verdict, kept here.
    const failedAt = row.status === ImageStatus.FAILED ? row.checkedAt : null;
    if (failedAt && fresh(failedAt, Math.min(FAILURE_TTL_MS, deps.config.images.checkTtlMs))) throw new FoundWanting(row);
    if (!failedAt && row.falUrl && fresh(row.falUploadedAt, FAL_URL_TTL_MS)) return { falUrl: row.falUrl, recorded: row !== image || !notWritten.has(image) };
    const beingChecked = row.status === ImageStatus.CHECKING;
    if (beingChecked ? !(row.leaseUntil && row.leaseUntil.getTime() > Date.now()) : !row.key) {
      if (row !== image) verdicts.remember(row);
      throw new Error(`Image ${row.id} has no stored copy to upload to fal (${row.status}: ${row.errorMessage ?? 'its check did not end'}).`);
    }
    // Only while nobody has uploaded it (a worker that read the row before another's upload
    // ended must not upload again), and only the file the row names, with no check running.
    const uploadable = {
      status: { not: ImageStatus.CHECKING },
      key: row.key,
      OR: [{ falUrl: null }, { falUploadedAt: { lt: new Date(Date.now() - FAL_URL_TTL_MS) } }],
    };
    const lease = beingChecked ? null : await claim(deps.db, row.id, uploadable);
    if (lease) {
      try {
        const work = await deps.media.workdir('fal-upload');
        try {
          const file = await deps.media.localCopy(row.key!, work.dir);
          const extension = row.contentType === 'image/png' ? 'png' : 'jpg';
          const falUrl = await deps.falUploader().upload(file, row.contentType ?? 'image/jpeg', `${row.id}.${extension}`);
          // Under this upload's own lease only: one that outlived it leaves the row to the worker
          // that took it over (uploading too); this URL still serves this run.
          const { count } = await deps.db.image.updateMany({ where: { id: row.id, leaseUntil: lease }, data: { falUrl, falUploadedAt: new Date(), leaseUntil: null } });
          deps.logger.debug({ imageId: row.id, recorded: count === 1 }, 'image uploaded to fal storage');
          return { falUrl, recorded: count === 1 };
        } finally {
          await work.done();
        }
      } catch (error) {
        await release(deps.db, row.id, lease).catch(() => undefined);
        throw error;
      }
    }
    if (Date.now() > deadline) throw new Error(`Timed out waiting for another worker's fal upload of image ${row.id}.`);
    await sleep(POLL_MS);
    row = await deps.db.image.findUniqueOrThrow({ where: { id: row.id } });
  }
}

/**
 * Takes the row's lease when nobody holds it (or the holder's lease ran out: it died); returns
 * the lease written, or null.
 */
async function claim(db: Db, id: string, extra: Prisma.ImageWhereInput = {}): Promise<Date | null> {
  const now = new Date();
  // A lease this process could not let go of is still its own, as long as it stands as written:
  // taken back at once rather than waited out.
  const left = leftBehind.get(id);
  const ours = left && !left.busy ? left.lease : null;
  const lease = new Date(now.getTime() + LEASE_MS);
  const { count } = await db.image.updateMany({
    where: { id, AND: [{ OR: [{ leaseUntil: null }, { leaseUntil: { lt: now } }, ...(ours ? [{ leaseUntil: ours }] : [])] }, extra] },
    data: { leaseUntil: lease },
  });
  if (left && (count === 1 || left.lease.getTime() < now.getTime())) leftBehind.delete(id);
  return count === 1 ? lease : null;
}

/**
 * Leases this process took and failed to release (image id → the leaseUntil it wrote): nobody
 * else may take one before it runs out, and this process knows what still runs under it (`busy`
 * while a fal upload a check gave up waiting for goes on). Bounded; an entry goes once taken
 * back or run out.
 */
const leftBehind = new Map<string, { lease: Date; busy: boolean }>();
const LEFT_BEHIND_MAX = 1_000;

function leaveBehind(id: string, lease: Date, stillRunning: Promise<unknown> | null) {
  if (leftBehind.size >= LEFT_BEHIND_MAX) leftBehind.delete(leftBehind.keys().next().value!);
  const entry = { lease, busy: stillRunning !== null };
  leftBehind.set(id, entry);
  void stillRunning?.finally(() => (entry.busy = false)).catch(() => undefined);
}

/**
 * Lets the row's lease go after a failed check or upload. Tried a few times: the failure is often
 * the database connection itself, and a lease left behind makes every job using the image wait
 * out LEASE_MS. If it still fails (callers then keep their own error), the lease runs out by
 * itself for other processes, and this one takes it back at its next try (leftBehind).
 */
async function release(db: Db, id: string, lease: Date | null, stillRunning: Promise<unknown> | null = null) {
  for (let attempt = 1; ; attempt++) {
    try {
      // Only this lease: one that ran out and was taken by another worker stays theirs.
      await db.image.updateMany({ where: { id, ...(lease ? { leaseUntil: lease } : {}) }, data: { leaseUntil: null } });
      return;
    } catch (error) {
      if (attempt >= RELEASE_ATTEMPTS) {
        if (lease) leaveBehind(id, lease, stillRunning);
        throw error;
      }
      await sleep(RELEASE_RETRY_MS * attempt);
    }
  }
}
/** `work`'s result; should it fail, the lease is let go first (see release). */
async function orRelease<T>(db: Db, id: string, lease: Date | null, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    await release(db, id, lease).catch(() => undefined);
    throw error;
  }
}
const RELEASE_ATTEMPTS = 5;
const RELEASE_RETRY_MS = 100;
/** An upload made during a check ends this long before the check's lease at the latest. */
const LEASE_MARGIN_MS = 5_000;

/** The upload's URL, or null when it does not come within `ms` (it is then made later, not twice at once). */
function withinLease(upload: Promise<string>, ms: number): Promise<string | null> {
  // An upload given up on may still fail later: that is no one's error any more.
  upload.catch(() => undefined);
  if (ms <= 0) return Promise.resolve(null);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  return Promise.race([upload, late]).finally(() => clearTimeout(timer));
}

/** The account's verdict on a URL: fetched and checked by this worker, or by another one. */
export async function checkUrlImage(deps: RunImageDeps, accountId: string, url: string, target: 'fal' | 'preview'): Promise<Image> {
  const deadline = Date.now() + LEASE_MS * 2 + deps.config.media.fetchTimeoutMs;
  for (;;) {
    const now = new Date();
    // A new URL: whoever inserts the row checks it.
    const inserted = await deps.db.image.createManyAndReturn({
      data: [{ id: uuidv7(), accountId, sourceUrl: url, status: ImageStatus.CHECKING, leaseUntil: new Date(now.getTime() + LEASE_MS) }],
      skipDuplicates: true,
    });
    if (inserted[0]) {
      const checked = await runCheck(deps, inserted[0], target);
      if (!notWritten.has(checked)) verdicts.remember(checked);
      return checked;
    }
    const row = await deps.db.image.findUniqueOrThrow({ where: { accountId_sourceUrl: { accountId, sourceUrl: url } } });
    const ttl = row.status === ImageStatus.FAILED ? Math.min(FAILURE_TTL_MS, deps.config.images.checkTtlMs) : deps.config.images.checkTtlMs;
    if (row.status !== ImageStatus.CHECKING && fresh(row.checkedAt, ttl)) {
      verdicts.remember(row);
      return row;
    }
    // Stale, or its checker died: check it again, if no other worker just did.
    const lease = await claim(deps.db, row.id, { updatedAt: row.updatedAt });
    if (lease) {
      return runCheck(deps, await orRelease(deps.db, row.id, lease, deps.db.image.update({ where: { id: row.id }, data: { status: ImageStatus.CHECKING } })), target);
    }
    if (Date.now() > deadline) throw new Error(`Timed out waiting for another worker's check of an image URL.`);
    await sleep(POLL_MS);
  }
}

/** Fetches and checks one URL image (this worker holds the row's lease), and records the verdict. */
async function runCheck(deps: RunImageDeps, row: Image, target: 'fal' | 'preview'): Promise<Image> {
  const url = row.sourceUrl!;
  const { media, images } = deps.config;
  const verdict = async (data: Partial<Image>): Promise<Image> => {
    // A verdict replaces the last one whole: a FAILED one keeps no fal URL of the image it had been.
    const fields = {
      key: null,
      contentType: null,
      width: null,
      height: null,
      bytes: null,
      errorCode: null,
      errorMessage: null,
      falUrl: null,
      falUploadedAt: null,
      ...data,
      checkedAt: new Date(),
      leaseUntil: null,
    };
    // Under this check's own lease only: a check that outlived it (another worker took the row
    // over and checks it again) must not clear that worker's lease, which would let a third one
    // in. Its verdict still serves the run it was made for.
    const [written] = await deps.db.image.updateManyAndReturn({ where: { id: row.id, leaseUntil: row.leaseUntil }, data: fields });
    if (written) return written;
    // The other worker's verdict, once written, is the one everyone reads; until then this one
    // serves only this run (not kept for others: no query shows it).
    const now = await deps.db.image.findUniqueOrThrow({ where: { id: row.id } });
    if (now.status !== ImageStatus.CHECKING) return now;
    const unwritten: Image = { ...row, ...fields };
    notWritten.add(unwritten);
    return unwritten;
  };
  const work = await orRelease(deps.db, row.id, row.leaseUntil, deps.media.workdir('image-check'));
  // The fal upload started during the check, if one was.
  let upload: Promise<string> | null = null;
  try {
    const file = join(work.dir, 'image');
    try {
      await downloadToFile(url, file, {
        allowPrivateNetwork: media.allowPrivateNetwork,
        maxBytes: images.maxBytes,
        timeoutMs: Math.min(media.fetchTimeoutMs, 30_000),
        retries: 2,
      });
    } catch (error) {
      if (isMediaError(error) && error.code === 'FETCH_TOO_LARGE') {
        return await verdict({ status: ImageStatus.FAILED, errorCode: 'IMAGE_INVALID', errorMessage: `IMAGE_TOO_LARGE: the image is over ${images.maxBytes} bytes.` });
      }
      const message = error instanceof Error ? error.message : String(error);
      return await verdict({ status: ImageStatus.FAILED, errorCode: 'IMAGE_UNAVAILABLE', errorMessage: `The image could not be fetched: ${message}` });
    }
    const inspected = await inspectImage(file, images.maxBytes);
    if (!inspected.ok) {
      const { reason, message } = inspected.violation;
      return await verdict({ status: ImageStatus.FAILED, errorCode: 'IMAGE_INVALID', errorMessage: `${reason}: ${message}` });
    }
    const { facts } = inspected;
    // fal fetches public JPEG and PNG URLs itself; anything else goes through Segue's storage.
    if (facts.format !== 'webp' && (await isPublicAddress(url))) {
      const contentType = facts.format === 'png' ? 'image/png' : 'image/jpeg';
      return await verdict({ status: ImageStatus.READY, contentType, width: facts.width, height: facts.height, bytes: facts.bytes, falUrl: null });
    }
    // When fal will need it in its storage, it goes there now, from the file at hand, while it is
    // stored: no second read of it, and the verdict and its fal URL in one write. Only while this
    // check's lease surely holds; an upload that fails or takes longer does not fail the check:
    // the image is uploaded from storage when a run needs it (uploadToFalOnce).
    const leaseEnds = (row.leaseUntil?.getTime() ?? Date.now() + LEASE_MS) - LEASE_MARGIN_MS;
    const toFal =
      target === 'fal' && needsFalStorage(deps.config)
        ? (normalized: string, contentType: string) =>
            withinLease(
              (upload = deps.falUploader().upload(normalized, contentType, `${row.id}.${contentType === 'image/png' ? 'png' : 'jpg'}`)),
              leaseEnds - Date.now(),
            ).catch((err: unknown) => {
              deps.logger.warn({ err, imageId: row.id }, 'uploading a checked image to fal storage failed; it goes when a run needs it');
              return null;
            })
        : undefined;
    const stored = await checkAndStore(deps, row.accountId, file, row.id, toFal);
    if (!stored.ok) {
      return await verdict({ status: ImageStatus.FAILED, errorCode: 'IMAGE_INVALID', errorMessage: `${stored.violation.reason}: ${stored.violation.message}` });
    }
    const falUrl = stored.also ?? null;
    return await verdict({ status: ImageStatus.READY, ...stored.stored, falUrl, falUploadedAt: falUrl ? new Date() : null });
  } catch (error) {
    // An upload given up on may still run under the lease: not taken back before it ends.
    await release(deps.db, row.id, row.leaseUntil, upload).catch(() => undefined);
    throw error;
  } finally {
    await work.done();
  }
}

/** True when the URL's host resolves to public addresses only (where fal can fetch it). */
async function isPublicAddress(url: string): Promise<boolean> {
  try {
    await assertFetchableUrl(url, { allowPrivateNetwork: false });
    return true;
  } catch {
    return false;
  }
}
