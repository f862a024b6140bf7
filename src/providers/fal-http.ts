import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ApiError, parseEndpointId, ValidationError } from '@fal-ai/client';
import type { Config } from '../config.ts';
import { ProviderError } from './provider.ts';

/**
 * The calls a worker makes about each request it follows, sent with node:http rather than fetch.
 * A worker makes one such call per request every few seconds (a status poll) or holds one open
 * per request (a status stream); a fetch builds a Request, a Response, web streams and weakly held
 * signals for each, kept until a major GC, so the worker's memory rose and fell by tens of MB
 * between major GCs with 1,000 requests polled. What a call builds here dies with it. A result
 * read (one per request) goes this way too: a third of a fetch's CPU through the client
 * (bench/fal-reads.ts), which counts when a burst of videos finishes at once on a busy worker,
 * and a 429's Retry-After reaches the caller. (Submits keep the client's fetch: sending them this
 * way too did not lower a worker's peak RSS, 199-200 against 200 MB with 1,000 submitted at once,
 * and a submit is the one call that must go out once.)
 */

const QUEUE_ORIGIN = 'https://queue.fal.run';

/** `owner/alias` of an endpoint id (with its `workflows/` or `comfy/` namespace), parsed by the client as it builds its own request URLs (PROTOCOL §2). */
export function appPathOf(endpointId: string): string {
  const { owner, alias, namespace } = parseEndpointId(endpointId);
  return `${namespace ? `${namespace}/` : ''}${owner}/${alias}`;
}

/** Retry-After (seconds or an HTTP date) in ms, if it says anything. */
export const retryAfterMs = (value: string | null | undefined): number | undefined => {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
};

/** Where a call about a request goes, and its headers: to fal with the key, or to the proxy naming fal's URL (as the client does). */
export function queueCall(fal: Config['fal'], requestId: string, path: string, accept: string): { url: URL; headers: OutgoingHttpHeaders } {
  const target = `${QUEUE_ORIGIN}/${appPathOf(fal.model)}/requests/${encodeURIComponent(requestId)}${path}`;
  const headers: OutgoingHttpHeaders = { accept };
  if (fal.key) headers.authorization = `Key ${fal.key}`;
  if (fal.proxyUrl) headers['x-fal-target-url'] = target;
  return { url: new URL(fal.proxyUrl ?? target), headers };
}

/**
 * Sends a GET; resolves with the response as soon as its head arrives. A GET on a kept-alive
 * connection that fal closed just as it was reused is sent once more (on whatever connection the
 * agent gives next), as node's documentation advises: it is a read, so a second one costs nothing.
 */
export function openGet(url: URL, headers: OutgoingHttpHeaders, signal: AbortSignal, retried = false): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    let answered = false;
    const request = send(url, { headers, signal }, (response) => {
      answered = true;
      resolve(response);
    });
    // Kept after the answer: a later error on the request is the response's too (read there).
    request.on('error', (error: NodeJS.ErrnoException) => {
      if (!answered && !retried && request.reusedSocket && error.code === 'ECONNRESET' && !signal.aborted) resolve(openGet(url, headers, signal, true));
      else reject(error);
    });
    request.end();
  });
}

/** Past these sizes an answer is not a status (a few hundred bytes) or a video's result (under a KB). */
const MAX_BYTES = { status: 1 << 20, result: 4 << 20 } as const;

/**
 * One GET about a request (`.../requests/<id><path>`, PROTOCOL §2), read whole within the signal.
 * Resolves with fal's JSON for a 2xx (undefined when the body is not JSON). Rejects as fal's client
 * would: an ApiError (a ValidationError for a 422) carrying fal's status, body and request id for
 * a 4xx or 5xx; the signal's reason when it aborts; the transport's error otherwise. And beyond
 * the client, as ProviderErrors of the call (never fal's word on the request): a 429 is
 * FAL_RATE_LIMITED carrying fal's Retry-After; a redirect (fal's queue sends none; a fetch would
 * have followed it), a JSON body that does not parse, or an answer over MAX_BYTES fails the call
 * (FAL_BAD_OUTPUT for a result's oversized output). No retry here: the caller asks again on its
 * own clock.
 */
async function readQueueJson(fal: Config['fal'], requestId: string, path: string, what: keyof typeof MAX_BYTES, signal: AbortSignal): Promise<unknown> {
  const { url, headers } = queueCall(fal, requestId, path, 'application/json');
  let response: IncomingMessage | undefined;
  const chunks: Buffer[] = [];
  try {
    response = await openGet(url, headers, signal);
    let bytes = 0;
    for await (const chunk of response as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes > MAX_BYTES[what]) {
        // A result's output past the bound is a bad output; anything else oversized, a bad answer.
        const output = what === 'result' && (response.statusCode ?? 0) >= 200 && (response.statusCode ?? 0) <= 299;
        throw new ProviderError(output ? 'FAL_BAD_OUTPUT' : 'FAL_UNAVAILABLE', `fal's answer to the ${what} call is over ${MAX_BYTES[what] >> 20} MB; not read.`, {
          retryable: true,
          status: response.statusCode ?? 0,
        });
      }
      chunks.push(chunk);
    }
  } catch (error) {
    throw signal.aborted ? signal.reason : error;
  } finally {
    response?.destroy();
  }
  const status = response.statusCode ?? 0;
  // fal did answer, but not with anything about the request: the call failed, not the request.
  const unusable = (why: string) => new ProviderError('FAL_UNAVAILABLE', `fal answered the ${what} call ${status} ${why}.`, { retryable: true, status });
  if (status >= 300 && status <= 399) throw unusable('with a redirect, which is not followed');
  const isJson = String(response.headers['content-type'] ?? '').includes('application/json');
  let body: unknown;
  if (isJson) {
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      throw unusable('with JSON that does not parse');
    }
  }
  if (status >= 200 && status <= 299) return body;
  if (status === 429) {
    // Asked again no sooner than fal says (the caller's next try waits for it, within its bound).
    throw new ProviderError('FAL_RATE_LIMITED', `fal rate-limited the ${what} call (429).`, {
      retryable: true,
      status,
      retryAfterMs: retryAfterMs(response.headers['retry-after']) ?? 0,
    });
  }
  const header = (name: string) => {
    const value = response.headers[name];
    return typeof value === 'string' && value ? value : undefined;
  };
  const message = (body as { message?: unknown } | undefined)?.message;
  const ErrorType = status === 422 ? ValidationError : ApiError;
  throw new ErrorType({
    message: typeof message === 'string' && message ? message : isJson ? (response.statusMessage ?? '') : `HTTP ${status}: ${response.statusMessage ?? ''}`,
    status,
    body,
    requestId: header('x-fal-request-id') ?? '',
    timeoutType: header('x-fal-request-timeout-type'),
  });
}

/** A request's status (`.../status?logs=0`): fal's JSON object; see readQueueJson for failures. */
export async function getStatus(fal: Config['fal'], requestId: string, signal: AbortSignal): Promise<Record<string, unknown>> {
  const body = await readQueueJson(fal, requestId, '/status?logs=0', 'status', signal);
  if (typeof body !== 'object' || body === null) throw new Error('fal answered the status call without a JSON body');
  return body as Record<string, unknown>;
}

/**
 * A finished request's result (`.../requests/<id>`): fal's JSON, the model's output (undefined when
 * it is not JSON: the caller finds no video in it); see readQueueJson for failures. Without the
 * client's own retries (three, about 1, 2 and 4 s apart, on 429/502/503/504 and transport errors):
 * its callers read again on their own clocks, the tracker's result loop with backoff within
 * FAL_RESULT_TIMEOUT_MS, a late delivery (followToEnd, the reconciler) at its next poll or pass.
 */
export async function getResult(fal: Config['fal'], requestId: string, signal: AbortSignal): Promise<unknown> {
  return readQueueJson(fal, requestId, '', 'result', signal);
}
