import { createParser } from 'eventsource-parser';
import type { Config } from '../config.ts';
import { ProviderError, type RequestState } from './provider.ts';

const QUEUE_ORIGIN = 'https://queue.fal.run';

/** `owner/alias` of an endpoint id (with its `workflows/` or `comfy/` namespace), as the client builds request URLs (PROTOCOL §2). */
export function appPathOf(endpointId: string): string {
  const parts = endpointId.split('/');
  const width = parts[0] === 'workflows' || parts[0] === 'comfy' ? 3 : 2;
  return parts.slice(0, width).join('/');
}

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
 */
export async function* readStatusStream(
  fal: Config['fal'],
  requestId: string,
  options: { idleMs: number; openMs?: number; signal?: AbortSignal },
): AsyncGenerator<RequestState> {
  const target = `${QUEUE_ORIGIN}/${appPathOf(fal.model)}/requests/${encodeURIComponent(requestId)}/status/stream?logs=0`;
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (fal.key) headers.authorization = `Key ${fal.key}`;
  // In proxy mode the request goes to the proxy, naming the fal URL it is for (as the client does).
  if (fal.proxyUrl) headers['x-fal-target-url'] = target;
  const idle = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, idle.signal]) : idle.signal;
  let timer: NodeJS.Timeout | undefined;
  const watch = (ms = options.idleMs, what = `no byte from fal's status stream for ${ms} ms`) => {
    clearTimeout(timer);
    timer = setTimeout(() => idle.abort(new Error(what)), ms);
  };
  const openMs = Math.min(options.openMs ?? options.idleMs, options.idleMs);
  watch(openMs, `fal's status stream did not answer within ${openMs} ms`);
  try {
    let response: Response;
    try {
      response = await fetch(fal.proxyUrl ?? target, { headers, signal });
    } catch (error) {
      throw streamFailure(`could not open fal's status stream: ${reason(error, idle.signal)}`);
    }
    if (!response.ok || !response.body || !(response.headers.get('content-type') ?? '').includes('text/event-stream')) {
      await response.body?.cancel().catch(() => undefined);
      throw streamFailure(`fal's status stream answered ${response.status} ${response.headers.get('content-type') ?? ''}`.trim(), response.status);
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
    const decoder = new TextDecoder();
    const reader = response.body.getReader();
    try {
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (error) {
          throw streamFailure(`fal's status stream broke: ${reason(error, idle.signal)}`);
        }
        if (chunk.done) return;
        watch();
        parser.feed(decoder.decode(chunk.value, { stream: true }));
        while (pending.length) yield pending.shift()!;
      }
    } finally {
      reader.cancel().catch(() => undefined);
    }
  } finally {
    clearTimeout(timer);
  }
}

const reason = (error: unknown, idle: AbortSignal) =>
  idle.aborted ? String((idle.reason as Error | undefined)?.message ?? idle.reason) : error instanceof Error ? error.message : String(error);

const streamFailure = (message: string, status?: number) =>
  new ProviderError('FAL_NETWORK', message, { retryable: true, ...(status ? { status } : {}) });
