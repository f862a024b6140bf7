/**
 * Errors are values with codes. The list is part of Segue's public contract (README, "Errors"):
 * clients switch on `extensions.code`, so add codes, never rename them.
 */
export const ERROR_CODES = [
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'BAD_USER_INPUT',
  'CONFLICT',
  'LIMIT_EXCEEDED',
  'RATE_LIMITED',
  'BUDGET_EXCEEDED',
  'UNAVAILABLE',
  'INTERNAL',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface ErrorDetails {
  /** Paths of the input fields that failed validation, e.g. `input.transitions.3.prompt`. */
  fields?: string[];
  [key: string]: unknown;
}

export class AppError extends Error {
  override name = 'AppError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: ErrorDetails = {},
  ) {
    super(message);
  }
}

export const unauthenticated = (reason?: string) =>
  new AppError(
    'UNAUTHENTICATED',
    reason ?? 'A valid API key, browser token or sign-in token is required: send "Authorization: Bearer <credential>".',
  );

/** Authenticated, but this credential may not do that (a browser token outside what it reads). */
export const forbidden = (message: string) => new AppError('FORBIDDEN', message);

/** `fields` names which inputs referred to nothing (e.g. `transitionIds.2`), never the raw ids. */
export const notFound = (what: string, fields?: string[]) =>
  new AppError('NOT_FOUND', `${what} not found.`, fields ? { fields } : {});

/** Input paths (`transitionIds.<i>`) of the listed ids that match `pick`. */
export const pathsOf = (name: string, ids: readonly string[], pick: (id: string) => boolean) =>
  ids.flatMap((id, i) => (pick(id) ? [`${name}.${i}`] : []));

export const badInput = (message: string, fields: string[]) => new AppError('BAD_USER_INPUT', message, { fields });

export const conflict = (message: string, details: ErrorDetails = {}) => new AppError('CONFLICT', message, details);

export const isAppError = (error: unknown): error is AppError =>
  error instanceof AppError ||
  (error instanceof Error && error.name === 'AppError' && (ERROR_CODES as readonly unknown[]).includes((error as AppError).code));
