import { isIP } from 'node:net';
import { z } from 'zod';
import { isPublicAddress } from '../media/ip-ranges.ts';
import { badInput } from './errors.ts';

/** Limits shared by every entry point (GraphQL, CLI, scripts); the README documents them. */
export const LIMITS = {
  itemsPerCall: 100,
  promptMaxLength: 2500,
  subtitlesMaxLength: 5000,
  urlMaxLength: 2048,
  idempotencyKeyMaxLength: 200,
} as const;

export const DURATIONS = [5, 10] as const;

/** An http(s) URL as every input takes it (images, audio). */
export const httpUrl = z
  .string()
  .trim()
  .max(LIMITS.urlMaxLength, `must be at most ${LIMITS.urlMaxLength} characters`)
  .refine(
    (value) => {
      try {
        const { protocol, hostname } = new URL(value);
        return (protocol === 'http:' || protocol === 'https:') && hostname.length > 0;
      } catch {
        return false;
      }
    },
    { message: 'must be an http(s) URL' },
  );

const text = (max: number) => z.string().max(max, `must be at most ${max} characters`);

export const transitionInput = z
  .object({
    // Each side is a URL or an uploaded image (its id), exactly one of the two.
    frontImageUrl: httpUrl.nullish().transform((v) => v || null),
    tailImageUrl: httpUrl.nullish().transform((v) => v || null),
    frontImageId: z.uuid('must be an image id').nullish().transform((v) => v ?? null),
    tailImageId: z.uuid('must be an image id').nullish().transform((v) => v ?? null),
    prompt: z
      .string()
      .trim()
      .min(1, 'must not be empty')
      .max(LIMITS.promptMaxLength, `must be at most ${LIMITS.promptMaxLength} characters`),
    transitionType: z
      .string()
      .trim()
      .regex(/^[a-z][a-z0-9_-]{0,31}$/, 'must be a lowercase name such as "morph" (letters, digits, - and _)')
      .nullish()
      .transform((v) => v ?? 'morph'),
    durationSeconds: z
      .number()
      .int()
      .refine((v) => (DURATIONS as readonly number[]).includes(v), { message: 'must be 5 or 10' })
      .nullish()
      .transform((v) => v ?? 5),
    negativePrompt: text(LIMITS.promptMaxLength).nullish().transform((v) => v || null),
    enableSubtitles: z.boolean().nullish().transform((v) => v ?? false),
    subtitles: text(LIMITS.subtitlesMaxLength).nullish().transform((v) => v?.trim() || null),
    audioUrl: httpUrl.nullish().transform((v) => v || null),
  })
  .superRefine((value, ctx) => {
    for (const side of ['front', 'tail'] as const) {
      const url = value[`${side}ImageUrl`];
      const id = value[`${side}ImageId`];
      if ((url === null) === (id === null)) {
        ctx.addIssue({
          code: 'custom',
          path: [url === null ? `${side}ImageUrl` : `${side}ImageId`],
          message: `needs exactly one of ${side}ImageUrl and ${side}ImageId`,
        });
      }
    }
    if (value.enableSubtitles && !value.subtitles) {
      ctx.addIssue({ code: 'custom', path: ['subtitles'], message: 'is required when enableSubtitles is true' });
    }
  });

export type TransitionInput = z.output<typeof transitionInput>;

const idempotencyKey = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(LIMITS.idempotencyKeyMaxLength, `must be at most ${LIMITS.idempotencyKeyMaxLength} characters`)
  .nullish()
  .transform((v) => v ?? null);

const list = <T extends z.ZodType>(item: T, what: string) => {
  const message = `must hold 1 to ${LIMITS.itemsPerCall} ${what}`;
  return z.array(item).min(1, message).max(LIMITS.itemsPerCall, message);
};

export const createTransitionsInput = z.object({
  transitions: list(transitionInput, 'transitions'),
  generate: z.boolean().nullish().transform((v) => v ?? false),
  idempotencyKey,
});

export type CreateTransitionsInput = z.output<typeof createTransitionsInput>;

export const generateBatchInput = z.object({
  transitionIds: list(z.uuid('must be a transition id'), 'transition ids'),
  idempotencyKey,
});

export type GenerateBatchInput = z.output<typeof generateBatchInput>;

/**
 * A URL whose host is written as a non-public address (loopback, private, link-local such as
 * cloud metadata, ...) or is localhost. Names that only resolve there are caught when the worker
 * fetches (src/media/safe-fetch.ts); this refuses the obvious ones at once, at the API.
 */
export function namesPrivateHost(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  return isIP(host) !== 0 && !isPublicAddress(host);
}

/** Unless private networks are allowed (ALLOW_PRIVATE_NETWORK), refuses image and audio URLs that name one. */
export function assertPublicUrls(input: CreateTransitionsInput, allowPrivateNetwork: boolean) {
  if (allowPrivateNetwork) return;
  const fields = input.transitions.flatMap((t, i) =>
    (['frontImageUrl', 'tailImageUrl', 'audioUrl'] as const).flatMap((key) => (t[key] && namesPrivateHost(t[key]) ? [`transitions.${i}.${key}`] : [])),
  );
  if (fields.length > 0) {
    throw badInput('Invalid input: URLs must reach the public internet; loopback, private and link-local addresses are refused.', fields);
  }
}

/** Parses with a zod schema, turning every issue into one BAD_USER_INPUT naming the field paths. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues;
  const fields = [...new Set(issues.map((issue) => issue.path.join('.') || '(input)'))];
  const summary = issues
    .slice(0, 5)
    .map((issue) => `${issue.path.join('.') || 'input'} ${issue.message}`)
    .join('; ');
  const more = issues.length > 5 ? ` (and ${issues.length - 5} more)` : '';
  throw badInput(`Invalid input: ${summary}${more}.`, fields);
}
