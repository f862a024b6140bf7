import type { TransitionInput } from '../../../src/generated/gql/graphql';
import type { ApiError } from '../api/errors';

/** The transition types the console offers (the API accepts any lowercase name). */
export const TRANSITION_TYPES = ['morph', 'crossfade', 'wipe', 'zoom'] as const;
export type TransitionType = (typeof TRANSITION_TYPES)[number];

/** Kling renders 5 or 10 seconds. */
export const DURATIONS = [5, 10] as const;
export type Duration = (typeof DURATIONS)[number];

/** An image picked from disk for one side: checked in the browser, then uploaded (uploadImage). */
export interface PickedImage {
  /** A blob: URL of the file, for the preview before (and while) it uploads. */
  previewUrl: string;
  name: string;
  bytes: number;
  width: number | null;
  height: number | null;
  state: 'checking' | 'invalid' | 'uploading' | 'uploaded' | 'failed';
  /** 0 to 1. */
  progress: number;
  /** The rule it breaks, or why the upload failed. */
  problem: string | null;
  /** The uploaded Image's id, once uploaded. */
  imageId: string | null;
}

export type Side = 'front' | 'tail';

/** One row of the form, as typed (strings), before it becomes a TransitionInput. */
export interface Draft {
  /** Stable React key: rows can be removed from the middle. */
  key: number;
  frontImageUrl: string;
  tailImageUrl: string;
  /** A picked file replaces the URL of its side. */
  frontImage: PickedImage | null;
  tailImage: PickedImage | null;
  prompt: string;
  durationSeconds: Duration;
  transitionType: TransitionType;
  negativePrompt: string;
}

export type DraftField = Exclude<keyof Draft, 'key' | 'frontImage' | 'tailImage'>;

let lastKey = 0;

export const emptyDraft = (): Draft => ({
  key: ++lastKey,
  frontImageUrl: '',
  tailImageUrl: '',
  frontImage: null,
  tailImage: null,
  prompt: '',
  durationSeconds: 5,
  transitionType: 'morph',
  negativePrompt: '',
});

/** Sent as typed; the API trims and validates (one set of rules, shown next to the fields). */
export const toTransitionInput = (draft: Draft): TransitionInput => ({
  ...(draft.frontImage?.imageId ? { frontImageId: draft.frontImage.imageId } : { frontImageUrl: draft.frontImageUrl }),
  ...(draft.tailImage?.imageId ? { tailImageId: draft.tailImage.imageId } : { tailImageUrl: draft.tailImageUrl }),
  prompt: draft.prompt,
  durationSeconds: draft.durationSeconds,
  transitionType: draft.transitionType,
  negativePrompt: draft.negativePrompt.trim() || null,
});

/** Row index → field → message, plus what names no row field (shown above the form). */
export interface FieldErrors {
  rows: Map<number, Partial<Record<DraftField, string>>>;
  general: string[];
}

export const noFieldErrors: FieldErrors = { rows: new Map(), general: [] };

const FIELD_PATH = /^(?:input\.)?transitions\.(\d+)\.(\w+)$/;
const DRAFT_FIELDS = new Set<string>(['frontImageUrl', 'tailImageUrl', 'frontImageId', 'tailImageId', 'prompt', 'durationSeconds', 'transitionType', 'negativePrompt']);

/**
 * BAD_USER_INPUT names every failing field in `extensions.fields` (`transitions.2.prompt`). The
 * message lists them as "<path> <problem>; ..."; the problem is taken from there when it is,
 * else the field is only marked invalid.
 */
export function fieldErrorsFrom(error: ApiError): FieldErrors {
  if (error.code !== 'BAD_USER_INPUT') return { rows: new Map(), general: [error.message] };
  const problems = error.message
    .replace(/^Invalid input:\s*/, '')
    .replace(/\.$/, '')
    .split('; ');
  const problemOf = (path: string) =>
    problems.find((p) => p.startsWith(`${path} `))?.slice(path.length + 1) ?? 'is not valid';

  const result: FieldErrors = { rows: new Map(), general: [] };
  for (const path of error.fields) {
    const match = FIELD_PATH.exec(path);
    const [, index, field] = match ?? [];
    if (index === undefined || field === undefined || !DRAFT_FIELDS.has(field)) {
      result.general.push(error.message);
      continue;
    }
    const row = result.rows.get(Number(index)) ?? {};
    // An uploaded image's problem shows where its side's URL would.
    row[field.replace(/ImageId$/, 'ImageUrl') as DraftField] = problemOf(path.replace(/^input\./, ''));
    result.rows.set(Number(index), row);
  }
  if (error.fields.length === 0) result.general.push(error.message);
  result.general = [...new Set(result.general)];
  return result;
}

/**
 * Sent with the create mutation, so that a double click or a retried request creates the batch
 * once. crypto.randomUUID exists only in secure contexts (https, localhost); the console may be
 * served over plain http on a LAN address, hence the fallback on getRandomValues.
 */
export function newIdempotencyKey(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** True while a picked image is still being checked or uploaded, or cannot be used. */
export const imagesBlocking = (drafts: readonly Draft[]) =>
  drafts.some((d) => [d.frontImage, d.tailImage].some((image) => image !== null && image.state !== 'uploaded'));
