import type { ClipDuration, Fixtures } from './fixtures.ts';
import type { StorageEmulator } from './storage.ts';

/** What the model answered; the result endpoint replays it and the webhook wraps it. */
export interface ModelAnswer {
  httpStatus: number;
  body: unknown;
  /** For the COMPLETED status of a failed job (fal's newer `error` / `error_type` fields). */
  error?: { text: string; type: string };
}

type FieldError = { loc: string[]; msg: string; type: string };

/**
 * Stands in for fal-ai/kling-video/v2.1/pro/image-to-video: the queue accepted the input
 * unchecked, so schema errors only show up here, when a runner executes the job (PROTOCOL §3/§4).
 */
export function runModel(
  input: unknown,
  injected: 'server' | 'validation' | undefined,
  videoUrl: string,
  fixtures: Fixtures,
  storage?: StorageEmulator,
): ModelAnswer {
  if (injected === 'server') {
    const text = 'Internal server error (injected by fal-emulator)';
    return { httpStatus: 500, body: { detail: text }, error: { text, type: 'runner_server_error' } };
  }
  const problems =
    injected === 'validation'
      ? [{ loc: ['body', 'image_url'], msg: 'Failed to download the image (injected by fal-emulator)', type: 'value_error' }]
      : [...validate(input), ...(storage ? checkImages(input, storage) : [])];
  if (problems.length > 0) {
    const text = problems.map((p) => `${p.loc.join('.')}: ${p.msg}`).join('; ');
    return { httpStatus: 422, body: { detail: problems }, error: { text, type: 'validation_error' } };
  }
  const video = fixtures[clipDuration(input)];
  return {
    httpStatus: 200,
    body: { video: { url: videoUrl, content_type: 'video/mp4', file_name: 'output.mp4', file_size: video.length } },
  };
}

/** The clip a valid input gets: Kling's `duration` is the string "5" (default) or "10". */
export function clipDuration(input: unknown): ClipDuration {
  return fieldOf(input, 'duration') === '10' ? '10' : '5';
}

/** FastAPI/pydantic-style field errors, as fal returns them with HTTP 422. */
function validate(input: unknown): FieldError[] {
  const problems: FieldError[] = [];
  for (const field of ['prompt', 'image_url']) {
    const value = fieldOf(input, field);
    if (value === undefined) problems.push({ loc: ['body', field], msg: 'Field required', type: 'missing' });
    else if (typeof value !== 'string') problems.push({ loc: ['body', field], msg: 'Input should be a valid string', type: 'string_type' });
  }
  const duration = fieldOf(input, 'duration');
  if (duration !== undefined && duration !== '5' && duration !== '10') {
    problems.push({ loc: ['body', 'duration'], msg: "Input should be '5' or '10'", type: 'literal_error' });
  }
  return problems;
}

const KLING = { maxBytes: 10 * 1024 * 1024, minSide: 300, maxRatio: 2.5, formats: ['jpeg', 'png'] };

/**
 * Kling fetches its images when the job runs and answers 422 for one it cannot use. The emulator
 * reaches no network: files in its own fal storage are checked by Kling's rules; other URLs are
 * taken as they are.
 */
function checkImages(input: unknown, storage: StorageEmulator): FieldError[] {
  const problems: FieldError[] = [];
  for (const field of ['image_url', 'tail_image_url']) {
    const url = fieldOf(input, field);
    if (typeof url !== 'string' || !storage.isFalUrl(url)) continue;
    const file = storage.byUrl(url);
    const loc = ['body', field];
    if (!file) problems.push({ loc, msg: `Failed to download the file from ${url}`, type: 'file_download_error' });
    else if (file.bytes.length > KLING.maxBytes) problems.push({ loc, msg: 'File is too large', type: 'file_too_large' });
    else if (!file.image || !KLING.formats.includes(file.image.format)) problems.push({ loc, msg: 'Failed to load the image', type: 'image_load_error' });
    else if (file.image.width < KLING.minSide || file.image.height < KLING.minSide) problems.push({ loc, msg: 'Image is too small', type: 'image_too_small' });
    else {
      const ratio = file.image.width / file.image.height;
      if (ratio > KLING.maxRatio || ratio < 1 / KLING.maxRatio) problems.push({ loc, msg: 'Image aspect ratio is out of range', type: 'image_aspect_ratio_error' });
    }
  }
  return problems;
}

function fieldOf(input: unknown, field: string): unknown {
  return typeof input === 'object' && input !== null ? (input as Record<string, unknown>)[field] : undefined;
}
