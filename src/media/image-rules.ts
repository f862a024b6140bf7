import { stat } from 'node:fs/promises';
import sharp, { type Metadata } from 'sharp';

/**
 * The one set of image rules, for uploads (checked at once) and URL images (checked before any
 * spending). They are Kling v2.1's own (fal answers a 422 otherwise, minutes later behind the
 * queue): JPEG or PNG (WebP accepted and converted), at most IMAGE_MAX_BYTES, each side at least
 * 300 px, aspect ratio between 1:2.5 and 2.5:1. Everything is read by sharp (libvips), never by
 * hand-parsed headers.
 */
// libvips keeps recent operations (decoded pixels included) in a cache, up to 50 MB by default;
// every image here is processed once, so the cache would only hold memory.
sharp.cache(false);

export const IMAGE_RULES = {
  minSide: 300,
  maxAspectRatio: 2.5,
  formats: ['jpeg', 'png', 'webp'] as const,
  /** Decompression bombs: a small file that decodes to gigapixels is refused as unreadable. */
  maxPixels: 100_000_000,
} as const;

/** The `extensions.reason` of a BAD_USER_INPUT for a broken rule (a public contract). */
export type ImageRuleReason = 'IMAGE_FORMAT' | 'IMAGE_TOO_LARGE' | 'IMAGE_TOO_SMALL' | 'IMAGE_ASPECT_RATIO' | 'IMAGE_UNREADABLE';

export interface ImageViolation {
  reason: ImageRuleReason;
  message: string;
}

export type ImageFormat = (typeof IMAGE_RULES.formats)[number];

export interface ImageFacts {
  format: ImageFormat;
  /** As displayed: EXIF orientation applied. */
  width: number;
  height: number;
  bytes: number;
}

export type Inspection = { ok: true; facts: ImageFacts } | { ok: false; violation: ImageViolation };

const MB = (bytes: number) => `${Math.round((bytes / 1024 / 1024) * 10) / 10} MB`;

/** Reads a file's format and size and checks them against the rules. Never throws for bad images. */
export async function inspectImage(file: string, maxBytes: number): Promise<Inspection> {
  const bytes = (await stat(file)).size;
  if (bytes > maxBytes) {
    return { ok: false, violation: { reason: 'IMAGE_TOO_LARGE', message: `The image is ${MB(bytes)}; at most ${MB(maxBytes)} is accepted.` } };
  }
  let metadata: Metadata;
  try {
    metadata = await sharp(file, { limitInputPixels: IMAGE_RULES.maxPixels }).metadata();
  } catch {
    return { ok: false, violation: { reason: 'IMAGE_UNREADABLE', message: 'The file is not an image that can be read.' } };
  }
  const format = metadata.format as string | undefined;
  if (!format || !(IMAGE_RULES.formats as readonly string[]).includes(format)) {
    return {
      ok: false,
      violation: { reason: 'IMAGE_FORMAT', message: `The image is ${format ? format.toUpperCase() : 'of an unknown format'}; JPEG, PNG or WebP is accepted.` },
    };
  }
  if (!metadata.width || !metadata.height) {
    return { ok: false, violation: { reason: 'IMAGE_UNREADABLE', message: 'The image has no dimensions.' } };
  }
  if (metadata.width * metadata.height > IMAGE_RULES.maxPixels) {
    return { ok: false, violation: { reason: 'IMAGE_UNREADABLE', message: `The image has more than ${IMAGE_RULES.maxPixels} pixels.` } };
  }
  // EXIF orientations 5 to 8 turn the picture a quarter: the displayed width is the stored height.
  const turned = (metadata.orientation ?? 1) >= 5;
  const facts: ImageFacts = {
    format: format as ImageFormat,
    width: turned ? metadata.height : metadata.width,
    height: turned ? metadata.width : metadata.height,
    bytes,
  };
  const violation = checkDimensions(facts.width, facts.height);
  return violation ? { ok: false, violation } : { ok: true, facts };
}

export function checkDimensions(width: number, height: number): ImageViolation | null {
  const { minSide, maxAspectRatio } = IMAGE_RULES;
  if (width < minSide || height < minSide) {
    return { reason: 'IMAGE_TOO_SMALL', message: `The image is ${width}×${height} px; each side must be at least ${minSide} px.` };
  }
  const ratio = width / height;
  if (ratio > maxAspectRatio || ratio < 1 / maxAspectRatio) {
    return {
      reason: 'IMAGE_ASPECT_RATIO',
      message: `The image is ${width}×${height} px (aspect ratio ${ratio.toFixed(2)}); it must be between 1:${maxAspectRatio} and ${maxAspectRatio}:1.`,
    };
  }
  return null;
}

export interface NormalizedImage {
  contentType: 'image/jpeg' | 'image/png';
  extension: 'jpg' | 'png';
  width: number;
  height: number;
  bytes: number;
}

/**
 * Writes the image as Kling takes it: EXIF orientation applied to the pixels, every metadata
 * block (EXIF with GPS and camera, XMP, IPTC) left out (sharp writes none unless asked), JPEG
 * stays JPEG and PNG stays PNG, WebP becomes PNG when it has transparency and JPEG otherwise.
 * libvips streams from file to file, so a large image is never held whole in memory twice.
 */
export async function normalizeImage(input: string, output: string, facts: ImageFacts, maxBytes: number): Promise<NormalizedImage> {
  const alpha = facts.format === 'webp' ? (await sharp(input).metadata()).hasAlpha === true : false;
  const asPng = facts.format === 'png' || (facts.format === 'webp' && alpha);
  const write = (png: boolean) =>
    (png
      ? sharp(input, { limitInputPixels: IMAGE_RULES.maxPixels }).rotate().png({ compressionLevel: 6 })
      : sharp(input, { limitInputPixels: IMAGE_RULES.maxPixels }).rotate().flatten({ background: '#ffffff' }).jpeg({ quality: 92, mozjpeg: true })
    ).toFile(output);
  let info = await write(asPng);
  let png = asPng;
  // Re-encoding can make a file larger than the original (a photo saved as PNG): JPEG fits.
  if (info.size > maxBytes && png) {
    info = await write(false);
    png = false;
  }
  return {
    contentType: png ? 'image/png' : 'image/jpeg',
    extension: png ? 'png' : 'jpg',
    width: info.width,
    height: info.height,
    bytes: info.size,
  };
}

/** Content types a client may declare for a direct upload. */
export const ACCEPTED_CONTENT_TYPES: Readonly<Record<string, ImageFormat>> = {
  'image/jpeg': 'jpeg',
  'image/png': 'png',
  'image/webp': 'webp',
};
