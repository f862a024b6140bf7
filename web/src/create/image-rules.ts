/**
 * The API's image rules (README, "Images"), checked in the browser as soon as a file is picked,
 * so a broken rule shows before anything is sent. The API checks again and has the last word.
 */
export const RULES = {
  types: ['image/jpeg', 'image/png', 'image/webp'],
  maxBytes: 10 * 1024 * 1024,
  minSide: 300,
  maxAspectRatio: 2.5,
} as const;

export interface ImageFacts {
  width: number;
  height: number;
  bytes: number;
  type: string;
}

/** The broken rule, in words, or null. */
export function brokenRule(facts: ImageFacts): string | null {
  if (!(RULES.types as readonly string[]).includes(facts.type)) return `${facts.type || 'This file'} is not accepted: use JPEG, PNG or WebP.`;
  if (facts.bytes > RULES.maxBytes) return `${formatBytes(facts.bytes)} is over the limit of ${formatBytes(RULES.maxBytes)}.`;
  if (facts.width < RULES.minSide || facts.height < RULES.minSide) {
    return `${facts.width}×${facts.height} px is too small: each side needs at least ${RULES.minSide} px.`;
  }
  const ratio = facts.width / facts.height;
  if (ratio > RULES.maxAspectRatio || ratio < 1 / RULES.maxAspectRatio) {
    return `${facts.width}×${facts.height} px is too elongated: the aspect ratio must be between 1:2.5 and 2.5:1.`;
  }
  return null;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Width and height as displayed (browsers apply EXIF orientation), or null when the browser cannot decode it. */
export async function readDimensions(file: File): Promise<{ width: number; height: number } | null> {
  try {
    const bitmap = await createImageBitmap(file);
    const size = { width: bitmap.width, height: bitmap.height };
    bitmap.close();
    return size;
  } catch {
    return null;
  }
}
