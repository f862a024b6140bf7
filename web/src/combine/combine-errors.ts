import type { ApiError } from '../api/errors';

/** What went wrong with a combine request: a message for the audio field, and the rest. */
export interface CombineErrors {
  audioUrl: string | null;
  general: string[];
}

export const noCombineErrors: CombineErrors = { audioUrl: null, general: [] };

/**
 * BAD_USER_INPUT names the failing inputs in `extensions.fields` (`audioUrl`, `transitionIds`,
 * `transitionIds.3`) and lists them in the message as "<path> <problem>; ...". The audio URL's
 * problem goes beside its field; anything about the clips, and every other error (CONFLICT when
 * a clip is no longer COMPLETED, NOT_FOUND, RATE_LIMITED...), above the form.
 */
export function combineErrorsFrom(error: ApiError): CombineErrors {
  if (error.code === 'CONFLICT') {
    return {
      audioUrl: null,
      general: [`${error.message} A clip may have changed since you picked it: check the clips below and pick again.`],
    };
  }
  if (error.code !== 'BAD_USER_INPUT') return { audioUrl: null, general: [error.message] };

  const problems = error.message
    .replace(/^Invalid input:\s*/, '')
    .replace(/\.$/, '')
    .split('; ');
  const fields = error.fields.map((f) => f.replace(/^input\./, ''));
  const result: CombineErrors = { audioUrl: null, general: [] };
  if (fields.includes('audioUrl')) {
    result.audioUrl = problems.find((p) => p.startsWith('audioUrl '))?.slice('audioUrl '.length) ?? 'is not valid';
  }
  if (fields.length === 0 || fields.some((f) => f !== 'audioUrl')) result.general.push(error.message);
  return result;
}
