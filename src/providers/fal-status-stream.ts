import { createParser } from 'eventsource-parser';
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config.ts';
import { openGet, queueCall } from './fal-http.ts';
import { ProviderError, type RequestState } from './provider.ts';

/** What a status body says, as the pipeline needs it; null for a status fal does not document. */
export function stateOf(body: { status?: unknown; queue_position?: unknown; error?: unknown }): RequestState | null {
  if (body.status === 'IN_QUEUE') return { state: 'IN_QUEUE', queuePosition: typeof body.queue_position === 'number' ? body.queue_position : null };
  if (body.status === 'IN_PROGRESS') return { state: 'IN_PROGRESS' };
  if (body.status === 'COMPLETED') return { state: 'COMPLETED', ...(typeof body.error === 'string' ? { failed: true } : {}) };
  return null;
}

/**
 * One connection to fal's status stream of a request (`GET .../requests/<id>/status/stream`,
 * Server-Sent Events, PROTOCOL §3): calls `onState` with each status as fal sends it, and
 * resolves when fal closes the stream (after COMPLETED, or early: the caller decides what an
 * early close means). Rejects with a ProviderError when it cannot connect, when fal answers
 * anything but a stream, when its answer does not begin within `openMs` (opening it is a call
 * like any other, FAL_CALL_TIMEOUT_MS), and when nothing at all (not even fal's 15 s keep-alive
 * comment) arrives for `idleMs`. Read with a well-kept SSE parser; fal's own client would hang on
 * a silent stream and take an early close for the end.
 *
 * Opened with node:http rather than fetch (fal-http.ts): a worker holds one such stream per
 * request in flight, and a fetch stream (Request, Response, web streams, a composite signal) costs
 * about three times the memory of a plain HTTP response (80 KB against 24 KB of RSS per open
 * stream, measured with 1,000 open). And read with listeners and a callback rather than as an
 * async generator over the response's async iterator: the generator's frame, Node's iterator
 * with its end-of-stream listeners and their pending promises were about 2 KB more per open
 * stream, for nothing a worker needs.
 */
export async function readStatusStream(
  fal: Config['fal'],
  requestId: string,
  options: { idleMs: number; openMs?: number; signal?: AbortSignal },
  onState: (state: RequestState) => void,
): Promise<void> {
  const { url, headers } = queueCall(fal, requestId, '/status/stream?logs=0', 'text/event-stream');
  // One signal ends the connection: the caller's, or the watch's when fal stays silent.
  const idle = new AbortController();
  const callerAborted = () => idle.abort(options.signal!.reason);
  if (options.signal?.aborted) callerAborted();
  else options.signal?.addEventListener('abort', callerAborted, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const watch = (ms = options.idleMs, what = `no byte from fal's status stream for ${ms} ms`) => {
    clearTimeout(timer);
    timer = setTimeout(() => idle.abort(new Error(what)), ms);
  };
  const openMs = Math.min(options.openMs ?? options.idleMs, options.idleMs);
  watch(openMs, `fal's status stream did not answer within ${openMs} ms`);
  let response: IncomingMessage | undefined;
  try {
    try {
      response = await openGet(url, headers, idle.signal);
    } catch (error) {
      throw streamFailure(`could not open fal's status stream: ${reason(error, idle.signal)}`);
    }
    const status = response.statusCode ?? 0;
    const type = response.headers['content-type'] ?? '';
    if (status < 200 || status > 299 || !type.includes('text/event-stream')) {
      response.on('error', ignore);
      throw streamFailure(`fal's status stream answered ${status} ${type}`.trim(), status);
    }
    watch();
    await follow(response, idle.signal, watch, (state) => {
      if (state.state !== 'COMPLETED') return onState(state);
      // From here the stream only has its end to send: the caller stopping (it has what it
      // needs) no longer cuts it, so its connection can go back to the pool (see follow), and
      // the silence watch gives way to the drain's own bound.
      options.signal?.removeEventListener('abort', callerAborted);
      clearTimeout(timer);
      onState(state);
    });
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', callerAborted);
    // A response read to its end has handed its socket back: destroying it then does nothing.
    response?.destroy();
  }
}

const ignore = () => undefined;

/** How long a stream that brought COMPLETED may take to close before it is cut. */
const DRAIN_MS = 1_000;

/**
 * Reads a status stream's events into `onState` until it ends. After COMPLETED nothing more is
 * taken, and fal closes the stream: it is read to its end, for DRAIN_MS at most, so that its
 * connection goes back to the pool for the next request rather than being cut (a new connection,
 * a TLS handshake with fal, per request otherwise). Rejects when the response fails or closes
 * before its end, but not once COMPLETED came (then the connection is only lost).
 */
function follow(response: IncomingMessage, signal: AbortSignal, watch: () => void, onState: (state: RequestState) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let completed = false;
    let settled = false;
    let drain: NodeJS.Timeout | undefined;
    const done = (error?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(drain);
      if (error === undefined || completed) resolve();
      else reject(streamFailure(`fal's status stream broke: ${reason(error, signal)}`));
    };
    // The caller's own failure is its own, not the stream's: passed on as it is.
    const consumerFailed = (error: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(drain);
      reject(error);
    };
    const parser = createParser({
      onEvent(event) {
        if (completed || settled) return;
        let state: RequestState | null;
        try {
          state = stateOf(JSON.parse(event.data) as Record<string, unknown>);
        } catch {
          /* not a status: ignore it, as the client would */
          return;
        }
        if (!state) return;
        if (state.state === 'COMPLETED') {
          completed = true;
          drain = setTimeout(done, DRAIN_MS);
        }
        try {
          onState(state);
        } catch (error) {
          consumerFailed(error);
        }
      },
    });
    // Listened to from here on: a response already gone would never say so.
    if (response.destroyed) return done(new Error('the stream closed before it was read'));
    // Decoded as UTF-8 across chunk boundaries.
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      if (completed) return;
      watch();
      try {
        parser.feed(chunk);
      } catch (error) {
        done(error);
        response.destroy();
      }
    });
    response.on('end', () => done());
    response.on('error', (error: Error) => done(error));
    response.on('close', () => done(response.readableEnded ? undefined : new Error('the stream closed before its end')));
  });
}

const reason = (error: unknown, idle: AbortSignal) =>
  idle.aborted ? String((idle.reason as Error | undefined)?.message ?? idle.reason) : error instanceof Error ? error.message : String(error);

const streamFailure = (message: string, status?: number) =>
  new ProviderError('FAL_NETWORK', message, { retryable: true, ...(status ? { status } : {}) });
