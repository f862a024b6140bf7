import { ApiError, createFalClient, ValidationError, type FalClient } from '@fal-ai/client';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { withDeadline } from './deadline.ts';
import { getResult, getStatus, retryAfterMs } from './fal-http.ts';
import { readStatusStream, stateOf } from './fal-status-stream.ts';
import {
  isProviderError,
  ProviderError,
  type GenerationInput,
  type GenerationResult,
  type RequestState,
  type VideoProvider,
} from './provider.ts';

const QUEUE_HOST = 'queue.fal.run';

/** The fal URL a request is really for: in proxy mode it travels in a header. */
function targetOf(url: string, headers: HeadersInit | undefined): URL | null {
  const header = new Headers(headers).get('x-fal-target-url');
  try {
    return new URL(header ?? url);
  } catch {
    return null;
  }
}

/**
 * Answers to a submit that say fal did not take the job: it refused the request itself (4xx), or
 * was unavailable or rate-limiting before anything was enqueued. Anything else (a gateway error, a
 * status fal does not document, a connection or a body cut short, a timeout) may come after fal
 * enqueued the job, and is uncertain.
 */
const REFUSED_SUBMIT = new Set([400, 401, 403, 404, 405, 413, 415, 422, 429, 500, 503]);

/**
 * The client re-sends a submit on 429/502/503/504 and on transport errors (PROTOCOL.md §5), and
 * also when the body of a 200 is cut off while it reads it. A re-sent submit whose first answer was
 * merely lost starts a second paid job, so submits go out exactly once: this fetch reads the whole
 * answer itself (the client gets it from memory), and answers any failure with a ProviderError the
 * client does not retry, saying whether fal may have accepted it (uncertain) or surely did not.
 * Cancels are idempotent and keep the client's own retries. Status and result reads do not go
 * through the client (fal-http.ts): a failed one is asked again on the caller's clock.
 */
function submitOnceFetch(base: typeof fetch, timeoutMs: number): typeof fetch {
  return async (input, init) => {
    // Only submits are POSTs to the queue (a cancel is a PUT): anything else goes through untouched.
    if ((init?.method ?? 'GET').toUpperCase() !== 'POST') return base(input, init);
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (targetOf(url, init?.headers)?.host !== QUEUE_HOST) return base(input, init);

    let response: Response;
    let body: ArrayBuffer;
    try {
      // The whole answer, its body included, within the deadline.
      [response, body] = await withDeadline(timeoutMs, init?.signal ?? undefined, async (signal) => {
        const answer = await base(input, { ...init, signal });
        return [answer, await answer.arrayBuffer()] as const;
      });
    } catch (error) {
      // The request may have reached fal before the connection broke or the timer fired.
      throw new ProviderError('FAL_SUBMIT_UNCERTAIN', `Submit to fal failed without a whole answer: ${(error as Error).message}`, {
        retryable: false,
        uncertain: true,
      });
    }
    const { status } = response;
    if (status === 429) {
      throw new ProviderError('FAL_RATE_LIMITED', 'fal rate-limited the submit (429).', {
        retryable: true,
        status,
        retryAfterMs: retryAfterMs(response.headers.get('retry-after')) ?? 0,
      });
    }
    if (status === 503 || status === 500) {
      throw new ProviderError('FAL_UNAVAILABLE', `fal refused the submit (${status}).`, {
        retryable: true,
        status,
        retryAfterMs: retryAfterMs(response.headers.get('retry-after')) ?? 0,
      });
    }
    const ok = status >= 200 && status < 300;
    if (!ok && !REFUSED_SUBMIT.has(status)) {
      // A gateway error (502, 504, 52x...): the upstream may have enqueued the job before it gave up.
      throw new ProviderError('FAL_SUBMIT_UNCERTAIN', `Submit to fal answered ${status}; it may have been accepted.`, {
        retryable: false,
        uncertain: true,
        status,
      });
    }
    if (ok) {
      // An answer that names no request cannot be tracked: fal may have the job all the same.
      let requestId: unknown;
      try {
        requestId = (JSON.parse(new TextDecoder().decode(body)) as { request_id?: unknown }).request_id;
      } catch {
        requestId = undefined;
      }
      if (typeof requestId !== 'string' || !requestId) {
        throw new ProviderError('FAL_SUBMIT_UNCERTAIN', `Submit to fal answered ${status} without a request id.`, {
          retryable: false,
          uncertain: true,
          status,
        });
      }
    }
    return new Response(body, { status, statusText: response.statusText, headers: response.headers });
  };
}

const errorText = (error: ApiError<unknown>) => {
  const body = error.body as { detail?: unknown } | undefined;
  const detail = body?.detail;
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d: { loc?: unknown[]; msg?: string }) => `${(d.loc ?? []).slice(1).join('.') || 'input'}: ${d.msg ?? 'invalid'}`)
      .join('; ');
  }
  return error.message;
};

/** Turns whatever the client threw into a ProviderError the pipeline can act on. */
export function classifyFalError(error: unknown, during: 'submit' | 'status' | 'result' | 'cancel'): ProviderError {
  if (error instanceof ProviderError) return error;
  if (isTimeout(error)) {
    return new ProviderError('FAL_NETWORK', `fal did not answer the ${during} call in time.`, { retryable: true });
  }
  if (error instanceof ValidationError || (error instanceof ApiError && error.status === 422)) {
    return new ProviderError('FAL_VALIDATION', `fal rejected the input: ${errorText(error)}`, {
      retryable: false,
      status: 422,
      scope: 'request',
    });
  }
  if (error instanceof ApiError) {
    const status = error.status;
    if (status === 401 || status === 403) {
      return new ProviderError('FAL_UNAUTHORIZED', `fal refused the credentials (${status}); check FAL_KEY.`, {
        retryable: false,
        status,
      });
    }
    if (status === 404 && during !== 'submit') {
      return new ProviderError('FAL_REQUEST_LOST', 'fal does not know this request any more.', { retryable: true, status, scope: 'request' });
    }
    if (status === 429) return new ProviderError('FAL_RATE_LIMITED', 'fal rate-limited the call (429).', { retryable: true, status });
    // fal replays a failed request's own answer (its status and body) with the request's id; a
    // gateway or load balancer answers without it. A 4xx so marked is fal's word on the request; a
    // 5xx may be fal's own trouble, and counts only when the status said the request failed (see
    // result()). "Still in progress" says the result is not readable yet.
    if (during === 'result' && error.requestId && status < 500 && !(status === 400 && /in progress/i.test(errorText(error)))) {
      return new ProviderError('FAL_JOB_ERROR', `The fal job ended in error (${status}): ${errorText(error)}`, {
        retryable: true,
        status,
        scope: 'request',
      });
    }
    return new ProviderError('FAL_UNAVAILABLE', `fal answered ${status} to ${during}: ${errorText(error)}`, { retryable: true, status });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new ProviderError('FAL_NETWORK', `Could not reach fal for ${during}: ${message}`, { retryable: true });
}

const isTimeout = (error: unknown) =>
  error instanceof Error && (error.name === 'TimeoutError' || (error.name === 'AbortError' && /timeout/i.test(String(error.message))));

/** The same failure twice: fal's settled answer about the request, not a passing fault. */
const sameAnswer = (a: ProviderError, b: ProviderError) => a.code === b.code && a.options.status === b.options.status && a.message === b.message;

/** Kling v2.1 Pro input: duration is a string, tail_image_url is Segue's tail image. */
export const klingInput = (input: GenerationInput) => ({
  prompt: input.prompt,
  image_url: input.frontImageUrl,
  tail_image_url: input.tailImageUrl,
  duration: String(input.durationSeconds) as '5' | '10',
  ...(input.negativePrompt ? { negative_prompt: input.negativePrompt } : {}),
});

export function createFalProvider(config: Config, logger: Logger): VideoProvider {
  const { fal } = config;
  const client: FalClient = createFalClient({
    ...(fal.key ? { credentials: fal.key } : {}),
    ...(fal.proxyUrl ? { proxyUrl: { url: fal.proxyUrl, when: 'always' as const } } : {}),
    fetch: submitOnceFetch(globalThis.fetch, fal.submitTimeoutMs),
    suppressLocalCredentialsWarning: true,
  });
  const model = fal.model;
  const log = logger.child({ component: 'fal' });
  // Every call about a request is bounded (a cancel's retries by the client included): a call
  // that hangs must never hold a transition in flight.
  const bounded = <T>(signal: AbortSignal | undefined, call: (abortSignal: AbortSignal) => Promise<T>) =>
    withDeadline(fal.callTimeoutMs, signal, call);

  async function readResult(requestId: string, signal: AbortSignal | undefined, failed: boolean): Promise<unknown> {
    try {
      return await bounded(signal, (abortSignal) => getResult(fal, requestId, abortSignal));
    } catch (error) {
      const failure = classifyFalError(error, 'result');
      // A 5xx carrying the request's id, when fal's status said the request failed: its answer.
      if (failed && !failure.requestOver && error instanceof ApiError && error.requestId && error.status >= 500) {
        throw new ProviderError('FAL_JOB_ERROR', `The fal job ended in error (${error.status}): ${errorText(error)}`, {
          retryable: true,
          status: error.status,
          scope: 'request',
        });
      }
      throw failure;
    }
  }

  return {
    name: 'fal',
    async submit(input, { webhookUrl, signal }) {
      try {
        const queued = await client.queue.submit(model, {
          input: klingInput(input),
          ...(webhookUrl ? { webhookUrl } : {}),
          ...(signal ? { abortSignal: signal } : {}),
        });
        return { requestId: queued.request_id, queuePosition: queued.queue_position ?? null };
      } catch (error) {
        throw classifyFalError(error, 'submit');
      }
    },
    async status(requestId, options = {}): Promise<RequestState> {
      const read = async () => {
        try {
          return await bounded(options.signal, (signal) => getStatus(fal, requestId, signal));
        } catch (error) {
          throw classifyFalError(error, 'status');
        }
      };
      let status;
      try {
        status = await read();
      } catch (error) {
        // "Unknown request" ends the attempt only when fal says it twice.
        if (!isProviderError(error) || !error.requestOver) throw error;
        status = await read().catch((again: unknown) => {
          throw isProviderError(again) && sameAnswer(error, again) ? again : demote(again);
        });
      }
      const state = stateOf(status);
      // Not a status fal documents: the request is not known to be over; ask again later.
      if (!state) throw new ProviderError('FAL_UNAVAILABLE', `fal answered an unknown status ${JSON.stringify(String(status.status))}.`, { retryable: true });
      return state;
    },
    async result(requestId, options = {}): Promise<GenerationResult> {
      let data: unknown;
      const failed = options.failed === true;
      try {
        data = await readResult(requestId, options.signal, failed);
      } catch (error) {
        if (!isProviderError(error) || !error.requestOver) throw error;
        // fal's answer for the request itself ends the attempt only when a second read, a moment
        // later, says the same: a passing fault must never cost a second paid submit.
        // The job stopping ends the wait at once, with the job's reason, as it ends a read.
        await sleep(250, undefined, options.signal ? { signal: options.signal } : {}).catch(() => {
          throw options.signal!.reason;
        });
        data = await readResult(requestId, options.signal, failed).catch((again: unknown) => {
          throw isProviderError(again) && sameAnswer(error, again) ? again : demote(again);
        });
      }
      const videoUrl = (data as { video?: { url?: unknown } } | undefined)?.video?.url;
      if (typeof videoUrl !== 'string' || !videoUrl) {
        // Not fal's word that the request failed: read again (the caller bounds how long).
        throw new ProviderError('FAL_BAD_OUTPUT', 'fal answered the result without a video URL.', { retryable: true });
      }
      return { videoUrl, raw: data };
    },
    statusStream(requestId, onState, options = {}) {
      return readStatusStream(
        fal,
        requestId,
        { idleMs: fal.streamIdleMs, openMs: fal.callTimeoutMs, ...(options.signal ? { signal: options.signal } : {}) },
        onState,
      );
    },
    async cancel(requestId, options = {}) {
      try {
        await bounded(options.signal, (abortSignal) => client.queue.cancel(model, { requestId, abortSignal }));
      } catch (error) {
        // 400 ALREADY_COMPLETED / 404: nothing left to stop.
        if (error instanceof ApiError && (error.status === 400 || error.status === 404)) return;
        const failure = classifyFalError(error, 'cancel');
        log.warn({ requestId, err: failure }, 'fal cancel failed');
        throw failure;
      }
    },
  };
}

/** A failure that did not repeat the first one: only this call failed. */
const demote = (error: unknown): ProviderError => {
  const failure = isProviderError(error) ? error : classifyFalError(error, 'result');
  if (!failure.requestOver) return failure;
  return new ProviderError(failure.code, failure.message, { ...failure.options, scope: 'call' });
};
