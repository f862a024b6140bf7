/**
 * What went wrong with a call, in the API's own terms: `code` is the GraphQL error's
 * `extensions.code` (UNAUTHENTICATED, NOT_FOUND, BAD_USER_INPUT, CONFLICT, LIMIT_EXCEEDED,
 * UNAVAILABLE, INTERNAL; README "Errors"), or NETWORK when the API could not be reached at all.
 */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly code: string,
    message: string,
    /** For BAD_USER_INPUT: the failing input paths, e.g. `transitions.0.prompt`. */
    readonly fields: readonly string[] = [],
    /** For a broken image rule: IMAGE_FORMAT, IMAGE_TOO_LARGE, IMAGE_TOO_SMALL, IMAGE_ASPECT_RATIO, IMAGE_UNREADABLE. */
    readonly reason: string | null = null,
    /** When the API said when to try again (`extensions.retryAfter`, seconds): in milliseconds. */
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
  }
}

export interface GraphQLErrorLike {
  message: string;
  extensions?: Record<string, unknown>;
}

/** One ApiError for a response's errors: the first one's code, every field, every message. */
export function apiErrorFrom(errors: readonly GraphQLErrorLike[]): ApiError {
  const code = String(errors[0]?.extensions?.code ?? 'INTERNAL');
  const fields = errors.flatMap((e) => (Array.isArray(e.extensions?.fields) ? e.extensions.fields.map(String) : []));
  const message = [...new Set(errors.map((e) => e.message))].join(' ') || 'The request failed.';
  const reason = errors[0]?.extensions?.reason;
  const retryAfter = errors[0]?.extensions?.retryAfter;
  return new ApiError(code, message, fields, typeof reason === 'string' ? reason : null, typeof retryAfter === 'number' ? retryAfter * 1000 : null);
}

/**
 * Whether a live stream that ended with this error is worth subscribing again, and after how
 * long (ms); null if not. LIMIT_EXCEEDED: the subscriber fell behind, and a new one starts from a
 * snapshot, after a second. UNAVAILABLE: the API had no room for another stream (its heap near
 * its limit), after the retryAfter it gave, or a service it depends on did not answer (no
 * retryAfter: 10 s); always between 1 s and 5 min.
 */
export function resubscribeAfterMs(error: ApiError): number | null {
  if (error.code === 'LIMIT_EXCEEDED') return 1_000;
  // Within reason whatever the answer said: never at once, never past five minutes.
  if (error.code === 'UNAVAILABLE') return Math.min(Math.max(error.retryAfterMs ?? 10_000, 1_000), 300_000);
  return null;
}

export const networkError = (detail?: string) =>
  new ApiError('NETWORK', `Could not reach the Segue API${detail ? ` (${detail})` : ''}. Check your connection and try again.`);

/** Anything thrown at us, as an ApiError, so components show one kind of error. */
export const asApiError = (error: unknown): ApiError =>
  error instanceof ApiError ? error : new ApiError('INTERNAL', error instanceof Error ? error.message : String(error));
