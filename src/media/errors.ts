/**
 * What went wrong in the media layer, as a caller needs to know it: a `code` to switch on and
 * `retryable` (a later attempt may succeed: a timeout, a 5xx, a dropped connection). A worker maps
 * these onto its own retry policy; the API never shows `message` to clients unfiltered, because
 * it may carry ffmpeg's stderr or a remote URL.
 */
export const MEDIA_ERROR_CODES = [
  /** Neither a system nor an npm ffmpeg/ffprobe could be run. */
  'MEDIA_TOOL_NOT_FOUND',
  /** ffmpeg/ffprobe exited with an error (details: the tail of its stderr). */
  'MEDIA_TOOL_FAILED',
  'MEDIA_TIMEOUT',
  'MEDIA_ABORTED',
  /** The file is not a video/image ffprobe understands, or lacks what was asked of it. */
  'MEDIA_PROBE_FAILED',
  'MEDIA_INVALID_INPUT',
  /** No font file for burned-in subtitles. */
  'MEDIA_FONT_NOT_FOUND',

  /** The URL is not http(s), is malformed, or points at a network we refuse to reach. */
  'FETCH_BLOCKED',
  'FETCH_INVALID_URL',
  'FETCH_TOO_LARGE',
  'FETCH_TIMEOUT',
  /** The server answered with an error status (details: `status`). */
  'FETCH_HTTP_ERROR',
  'FETCH_NETWORK',
  'FETCH_TOO_MANY_REDIRECTS',

  'STORAGE_INVALID_KEY',
  'STORAGE_NOT_FOUND',
  'STORAGE_FAILED',
] as const;

export type MediaErrorCode = (typeof MEDIA_ERROR_CODES)[number];

export interface MediaErrorOptions {
  retryable?: boolean;
  /** HTTP status for FETCH_HTTP_ERROR / STORAGE_FAILED. */
  status?: number;
  /** The last lines of a tool's stderr, for logs. */
  stderr?: string;
  cause?: unknown;
}

export class MediaError extends Error {
  override name = 'MediaError';
  readonly retryable: boolean;
  readonly status: number | undefined;
  readonly stderr: string | undefined;

  constructor(
    readonly code: MediaErrorCode,
    message: string,
    options: MediaErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retryable = options.retryable ?? false;
    this.status = options.status;
    this.stderr = options.stderr;
  }
}

export const isMediaError = (error: unknown): error is MediaError =>
  error instanceof MediaError ||
  (error instanceof Error &&
    error.name === 'MediaError' &&
    (MEDIA_ERROR_CODES as readonly unknown[]).includes((error as MediaError).code));
