/**
 * One client process of bench/subscriptions.ts: opens WebSocket connections (or, with
 * BENCH_TRANSPORT=sse, server-sent event streams) with one transitionUpdated subscription each
 * and reports, for every event, when it arrived.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createClient } from 'graphql-ws';
import { createClient as createSseClient } from 'graphql-sse';
import WebSocket from 'ws';

interface Plan {
  url: string;
  subscribers: Array<{ apiKey: string; batchId: string }>;
  /** Reconnect as browsers do (graphql-ws' default: 5 attempts, randomized backoff); else never. */
  retry: boolean;
}

const now = () => performance.timeOrigin + performance.now();
// BENCH_FIELDS=console: what the web console asks for (web/src/api/operations.ts, ConsoleTransition).
const CONSOLE_FIELDS =
  'id status version frontImageUrl tailImageUrl prompt negativePrompt transitionType durationSeconds queuePosition attempts ' +
  'videoUrl posterUrl estimatedCost estimatedCompletionAt error { code message } updatedAt';
const fields = process.env.BENCH_FIELDS === 'console' ? CONSOLE_FIELDS : 'id version';
const query = `subscription($batchId: ID) { transitionUpdated(batchId: $batchId) { ${fields} } }`;

/**
 * graphql-sse's client (each subscription its own event stream over HTTP, as Yoga serves it) with
 * graphql-ws' options: the same credential and retry count. graphql-sse retries network errors
 * only, with its own backoff, and tells no close code: a stream that fails is counted by the
 * sink's error (`err:...`); one the server completes is not counted.
 */
function sseClient(options: Parameters<typeof createClient>[0]) {
  const { authorization } = options.connectionParams as { authorization: string };
  return createSseClient({
    url: String(options.url).replace(/^ws/, 'http'),
    headers: { authorization },
    retryAttempts: options.retryAttempts ?? 0,
    on: { connecting: () => options.on?.connecting?.(false) },
  });
}

process.once('message', async (plan: Plan) => {
  // How long this process's own event loop was held up: a stalled client makes events look late.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  let receipts: Array<[string, number, number]> = [];
  let ready = 0;
  let reconnects = 0;
  /**
   * Why connections ended before the run did: by close code (1006: cut without a close frame;
   * 4408: the server saw no connection_init in time) and by the socket's error (`err:...`).
   */
  const closes: Record<string, number> = {};
  let stopping = false;
  const clients = plan.subscribers.map(({ apiKey, batchId }) => {
    let snapshot = true;
    let seen = 0;
    let attempts = 0;
    const client = (process.env.BENCH_TRANSPORT === 'sse' ? sseClient : createClient)({
      url: plan.url,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${apiKey}` },
      retryAttempts: plan.retry ? 5 : 0,
      // A browser sees a reset connection as a close (1006), which graphql-ws retries; node's ws
      // reports the socket error itself, which it would not.
      shouldRetry: () => plan.retry,
      on: {
        connecting: () => {
          if (attempts++ > 0) reconnects++;
          // A new connection starts with a new snapshot.
          if (snapshot) seen = 0;
        },
        error: (error) => {
          if (stopping) return;
          const key = `err:${String((error as { code?: string; message?: string }).code ?? (error as Error).message ?? error).slice(0, 40)}`;
          closes[key] = (closes[key] ?? 0) + 1;
        },
        closed: (event) => {
          if (stopping) return;
          const code = String((event as { code?: number }).code ?? 'error');
          closes[code] = (closes[code] ?? 0) + 1;
        },
      },
    });
    client.subscribe<{ transitionUpdated: { id: string; version: number } }>(
      { query, variables: { batchId } },
      {
        next: ({ data }) => {
          const t = now();
          if (snapshot) {
            // The first 20 events are the batch's snapshot, not changes.
            if (++seen === 20) {
              snapshot = false;
              if (++ready === plan.subscribers.length) process.send!({ type: 'ready' });
            }
            return;
          }
          receipts.push([data!.transitionUpdated.id, data!.transitionUpdated.version, t]);
        },
        error: (error) => {
          // Over SSE this is the only news of a stream that failed (see sseClient).
          if (process.env.BENCH_TRANSPORT === 'sse' && !stopping) {
            const key = `err:${(error instanceof Error ? error.message : String(JSON.stringify(error))).slice(0, 40)}`;
            closes[key] = (closes[key] ?? 0) + 1;
          }
          const e = error as { code?: number; reason?: string; message?: string };
          process.send!({ type: 'error', error: e.code !== undefined ? `closed ${e.code} ${e.reason ?? ''}` : (e.message ?? JSON.stringify(error)) });
        },
        complete: () => undefined,
      },
    );
    return client;
  });
  const flush = setInterval(() => {
    process.send!({ type: 'connected', connected: ready, reconnects, closes });
    if (receipts.length) {
      process.send!({ type: 'receipts', receipts });
      receipts = [];
    }
  }, 200);
  process.on('message', async (message: { type: string }) => {
    // Every process's subscribers are ready: the measured run starts.
    if (message.type === 'reset') loopDelay.reset();
    if (message.type !== 'stop') return;
    stopping = true;
    clearInterval(flush);
    process.send!({ type: 'receipts', receipts, loopDelayMaxMs: loopDelay.max / 1e6 }, () => {
      for (const c of clients) void c.dispose();
      process.send!({ type: 'stopped' });
    });
  });
});
