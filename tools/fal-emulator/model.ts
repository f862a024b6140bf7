import type { ClipDuration, Fixtures } from './fixtures.ts';

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
): ModelAnswer {
  if (injected === 'server') {
    const text = 'Internal server error (injected by fal-emulator)';
    return { httpStatus: 500, body: { detail: text }, error: { text, type: 'runner_server_error' } };
  }
  const problems =
    injected === 'validation'
      ? [{ loc: ['body', 'image_url'], msg: 'Failed to download the image (injected by fal-emulator)', type: 'value_error' }]
      : validate(input);
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

function fieldOf(input: unknown, field: string): unknown {
  return typeof input === 'object' && input !== null ? (input as Record<string, unknown>)[field] : undefined;
}
