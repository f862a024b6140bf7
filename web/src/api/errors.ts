/**
 * What went wrong with a call, in the API's own terms: `code` is the GraphQL error's
 * `extensions.code` (UNAUTHENTICATED, NOT_FOUND, BAD_USER_INPUT, CONFLICT, LIMIT_EXCEEDED,
 * INTERNAL; README "Errors"), or NETWORK when the API could not be reached at all.
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
  return new ApiError(code, message, fields, typeof reason === 'string' ? reason : null);
}

export const networkError = (detail?: string) =>
  new ApiError('NETWORK', `Could not reach the Segue API${detail ? ` (${detail})` : ''}. Check your connection and try again.`);

/** Anything thrown at us, as an ApiError, so components show one kind of error. */
export const asApiError = (error: unknown): ApiError =>
  error instanceof ApiError ? error : new ApiError('INTERNAL', error instanceof Error ? error.message : String(error));
