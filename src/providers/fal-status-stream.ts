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
 * Server-Sent Events, PROTOCOL §3): yields each status as fal sends it, and returns when fal closes
 * the stream (after COMPLETED, or early: the caller decides what an early close means). Throws a
 * ProviderError when it cannot connect, when fal answers anything but a stream, when its answer
 * does not begin within `openMs` (opening it is a call like any other, FAL_CALL_TIMEOUT_MS), and
 * when nothing at all (not even fal's 15 s keep-alive comment) arrives for `idleMs`. Read with a well-kept SSE
 * parser; fal's own client would hang on a silent stream and take an early close for the end.
 * Opened with node:http rather than fetch (fal-http.ts): a worker holds one such stream per
 * request in flight, and a fetch stream (Request, Response, web streams, a composite signal) costs
 * about three times the memory of a plain HTTP response (80 KB against 24 KB of RSS per open
 * stream, measured with 1,000 open).
 */
export async function* readStatusStream(
  fal: Config['fal'],
  requestId: string,
  options: { idleMs: number; openMs?: number; signal?: AbortSignal },
): AsyncGenerator<RequestState> {
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
  let chunks: AsyncIterator<string> | undefined;
  let completed = false;
  try {
    try {
      response = await openGet(url, headers, idle.signal);
    } catch (error) {
      throw streamFailure(`could not open fal's status stream: ${reason(error, idle.signal)}`);
    }
    // Errors are read through the iterator below; one that comes while nothing reads (the caller
    // stopping while this waits at a yield) must not go unhandled.
    response.on('error', ignore);
    const status = response.statusCode ?? 0;
    const type = response.headers['content-type'] ?? '';
    if (status < 200 || status > 299 || !type.includes('text/event-stream')) {
      throw streamFailure(`fal's status stream answered ${status} ${type}`.trim(), status);
    }
    watch();
    const pending: RequestState[] = [];
    const parser = createParser({
      onEvent(event) {
        try {
          const state = stateOf(JSON.parse(event.data) as Record<string, unknown>);
          if (state) pending.push(state);
        } catch {
          /* not a status: ignore it, as the client would */
        }
      },
    });
    // Decoded as UTF-8 across chunk boundaries.
    response.setEncoding('utf8');
    chunks = response[Symbol.asyncIterator]() as AsyncIterator<string>;
    for (;;) {
      let chunk: IteratorResult<string>;
      try {
        chunk = await chunks.next();
      } catch (error) {
        throw streamFailure(`fal's status stream broke: ${reason(error, idle.signal)}`);
      }
      if (chunk.done) return;
      watch();
      parser.feed(chunk.value);
      while (pending.length) {
        const state = pending.shift()!;
        if (state.state === 'COMPLETED' && !completed) {
          // From here the stream only has its end to send: the caller stopping (it has what it
          // needs) no longer cuts it, so its connection can go back to the pool (see below).
          completed = true;
          options.signal?.removeEventListener('abort', callerAborted);
        }
        yield state;
        // fal ends the stream after COMPLETED: so does this, and the finally below reads its end.
        if (completed) return;
      }
    }
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', callerAborted);
    // fal closes the stream right after COMPLETED: read it to its end, briefly, so that its
    // connection goes back to the pool for the next request rather than being cut (a new
    // connection, a TLS handshake with fal, per request otherwise). Any other end cuts it.
    if (completed && response && chunks && !response.readableEnded) await drain(chunks, DRAIN_MS);
    // A response read to its end has handed its socket back: destroying it then does nothing.
    response?.destroy();
  }
}

const ignore = () => undefined;

/** How long a stream that brought COMPLETED may take to close before it is cut. */
const DRAIN_MS = 1_000;

/** Reads what is left of a response (nothing but fal's closing, normally), for `ms` at most. */
async function drain(chunks: AsyncIterator<string>, ms: number) {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, ms, 'late')));
  try {
    for (;;) {
      const next = await Promise.race([chunks.next(), late]).catch(() => 'late' as const);
      if (next === 'late' || next.done) return;
    }
  } finally {
    clearTimeout(timer);
  }
}

const reason = (error: unknown, idle: AbortSignal) =>
  idle.aborted ? String((idle.reason as Error | undefined)?.message ?? idle.reason) : error instanceof Error ? error.message : String(error);

const streamFailure = (message: string, status?: number) =>
  new ProviderError('FAL_NETWORK', message, { retryable: true, ...(status ? { status } : {}) });
