/**
 * A video provider: a queue of paid generation requests somewhere else (fal), or a local renderer
 * (preview). The pipeline submits once, then tracks the request by id until it ends.
 */
export interface GenerationInput {
  prompt: string;
  negativePrompt: string | null;
  frontImageUrl: string;
  tailImageUrl: string;
  /** Storage keys of Segue's copies of the images, when it holds them (the preview reads them directly). */
  frontImageKey?: string | null;
  tailImageKey?: string | null;
  durationSeconds: number;
  transitionType: string;
}

export type RequestState =
  | { state: 'IN_QUEUE'; queuePosition: number | null }
  | { state: 'IN_PROGRESS' }
  /** `failed`: fal said the request ended without output (newer status bodies carry `error`). */
  | { state: 'COMPLETED'; failed?: boolean };

export interface GenerationResult {
  videoUrl: string;
  raw: unknown;
}

export interface VideoProvider {
  readonly name: string;
  submit(input: GenerationInput, options: { webhookUrl?: string | undefined; signal?: AbortSignal }): Promise<{
    requestId: string;
    queuePosition: number | null;
  }>;
  /** Where the request stands. Throws a ProviderError: `scope: 'request'` when fal does not know it (lost). */
  status(requestId: string, options?: { signal?: AbortSignal }): Promise<RequestState>;
  /**
   * The output of a COMPLETED request. Throws a ProviderError with `scope: 'request'` only when
   * the request itself ended in error (fal's own answer for it, confirmed by a second read); any
   * other failure is the call's (`scope: 'call'`): read the result again later, never resubmit.
   * `failed`: fal's status said the request ended in error (so its 5xx answer is the request's).
   */
  result(requestId: string, options?: { signal?: AbortSignal; failed?: boolean }): Promise<GenerationResult>;
  /** Best effort: a request already running may still finish (and be billed). */
  cancel(requestId: string, options?: { signal?: AbortSignal }): Promise<void>;
  /**
   * One connection to the provider's live status of a request, when it has one: `onState` gets
   * each status as it changes; resolves when the provider closes it (after COMPLETED, or early);
   * rejects when it fails or goes silent. The caller reconnects, and falls back to `status` polling.
   */
  statusStream?(requestId: string, onState: (state: RequestState) => void, options?: { signal?: AbortSignal }): Promise<void>;
  /** The output has been stored: let go of whatever the provider kept for it. */
  forget?(requestId: string): Promise<void>;
  close?(): Promise<void>;
}

/**
 * What went wrong, as the pipeline needs to know it:
 * - `retryable`: a later attempt may succeed (BullMQ backs off, honouring `retryAfterMs`);
 * - `uncertain`: a submit whose outcome is unknown (the provider may have accepted, and be billing,
 *   a request we have no id for); never resubmitted blindly;
 * - `scope`: for calls about a request already submitted (status, result, cancel), whether the
 *   request itself is over ('request': it failed, or fal no longer knows it) or only this call
 *   failed ('call', the default: ask again later; the request may still run or hold a video).
 */
export class ProviderError extends Error {
  override name = 'ProviderError';
  constructor(
    readonly code: ProviderErrorCode,
    message: string,
    readonly options: {
      retryable: boolean;
      uncertain?: boolean;
      retryAfterMs?: number;
      status?: number;
      scope?: 'call' | 'request';
    } = {
      retryable: false,
    },
  ) {
    super(message);
  }
  get retryable() {
    return this.options.retryable;
  }
  get uncertain() {
    return this.options.uncertain === true;
  }
  /** The request is over (failed or unknown to the provider): the next attempt submits anew. */
  get requestOver() {
    return this.options.scope === 'request';
  }
}

export const PROVIDER_ERROR_CODES = [
  'FAL_RATE_LIMITED',
  'FAL_UNAVAILABLE',
  'FAL_NETWORK',
  'FAL_SUBMIT_UNCERTAIN',
  'FAL_VALIDATION',
  'FAL_UNAUTHORIZED',
  'FAL_JOB_ERROR',
  /** Still IN_PROGRESS at fal after FAL_TIMEOUT_MS: canceled there, and fal stopped it. */
  'FAL_TIMEOUT',
  /** Still waiting in fal's queue after FAL_QUEUE_TIMEOUT_MS: canceled there before it ran. */
  'FAL_QUEUE_TIMEOUT',
  /** fal finished the request but its result could not be read for FAL_RESULT_TIMEOUT_MS (never paid again). */
  'FAL_RESULT_UNAVAILABLE',
  'FAL_REQUEST_LOST',
  'FAL_BAD_OUTPUT',
  'PREVIEW_RENDER_FAILED',
  /** An input image Segue may not or cannot fetch (refused network, 4xx): retrying will not help. */
  'IMAGE_UNAVAILABLE',
  /** An input image that breaks Kling's rules (the message names the rule); found before any submit. */
  'IMAGE_INVALID',
  /** Storage or fal's storage API failed while the images were readied for a submit: retried. */
  'IMAGE_PREPARE_FAILED',
  /** The finished video could not be copied into Segue's storage. */
  'MEDIA_COPY_FAILED',
  // Not the provider's doing, but ends an attempt the same way: the account's budget is spent.
  'BUDGET_EXCEEDED',
] as const;
export type ProviderErrorCode = (typeof PROVIDER_ERROR_CODES)[number];

export const isProviderError = (error: unknown): error is ProviderError =>
  error instanceof Error && error.name === 'ProviderError' && typeof (error as ProviderError).code === 'string';
