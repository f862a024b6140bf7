import { Counter, Histogram, Registry, collectDefaultMetrics, Gauge } from 'prom-client';
import type { PoolStats } from './db.ts';

/**
 * Prometheus metrics of one process (GET /metrics). One registry per runtime, so tests can run
 * several. `pool`: the PostgreSQL pool's figures, read when scraped.
 */
export function createMetrics(sources: { pool?: () => PoolStats } = {}) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'segue_' });
  const { pool } = sources;
  if (pool) {
    // Exhaustion shows as UNAVAILABLE errors (pg's connect timeout); these say whether the pool
    // is too small for the load or a connection is never given back (busy at max, idle at none).
    new Gauge({
      name: 'segue_db_pool_connections',
      help: "This process's PostgreSQL connections: busy (running a statement or transaction) or idle",
      labelNames: ['state'] as const,
      registers: [registry],
      collect() {
        const now = pool();
        this.set({ state: 'busy' }, now.busy);
        this.set({ state: 'idle' }, now.idle);
      },
    });
    new Gauge({
      name: 'segue_db_pool_waiting',
      help: 'Statements and transactions of this process waiting for a PostgreSQL connection',
      registers: [registry],
      collect() {
        this.set(pool().waiting);
      },
    });
    new Gauge({
      name: 'segue_db_pool_max',
      help: 'DATABASE_POOL_SIZE: the most PostgreSQL connections this process opens in its shared pool (a generation worker has one more, its claims\' own)',
      registers: [registry],
      collect() {
        this.set(pool().max);
      },
    });
  }
  return {
    registry,
    falRequests: new Counter({
      name: 'segue_fal_requests_total',
      help: 'Calls to fal by operation and outcome',
      labelNames: ['operation', 'outcome'] as const,
      registers: [registry],
    }),
    falErrors: new Counter({
      name: 'segue_fal_errors_total',
      help: 'fal errors by code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    falLatency: new Histogram({
      name: 'segue_fal_request_duration_seconds',
      help: 'Latency of calls to fal by operation',
      labelNames: ['operation'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    generationDuration: new Histogram({
      name: 'segue_generation_duration_seconds',
      help: 'From submit to a finished video',
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 900, 1800],
      registers: [registry],
    }),
    uncertainSubmits: new Counter({
      name: 'segue_fal_uncertain_submits_total',
      help: 'Submits whose outcome was unknown (fal may have accepted them); never resubmitted automatically',
      registers: [registry],
    }),
    retries: new Counter({
      name: 'segue_generation_retries_total',
      help: 'Attempts that failed and were scheduled again, by error code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    finished: new Counter({
      name: 'segue_transitions_finished_total',
      help: 'Transitions that ended, by status',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'segue_http_request_duration_seconds',
      help: 'HTTP requests by route and status class',
      labelNames: ['route', 'method', 'status'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    graphqlDuration: new Histogram({
      name: 'segue_graphql_operation_duration_seconds',
      help: 'GraphQL query and mutation execution time',
      labelNames: ['operation'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    subscriptions: new Gauge({
      name: 'segue_subscriptions_open',
      help: 'GraphQL subscriptions open on this API instance',
      registers: [registry],
    }),
    setupTurnsWaiting: new Gauge({
      name: 'segue_subscription_setups_waiting',
      help: 'WebSocket connections, subscriptions and SSE requests waiting for a setup turn (SUBSCRIPTION_SETUP_CONCURRENCY at once): a reconnect burst in line',
      registers: [registry],
    }),
    streamsRefused: new Counter({
      name: 'segue_subscriptions_refused_total',
      help: 'Live streams refused because this process\'s heap was near its limit, by transport: SSE requests (503) and WebSocket connections (closed 1013 as they opened or when their setup turn came)',
      labelNames: ['transport'] as const,
      registers: [registry],
    }),
    credentialWatches: new Gauge({
      name: 'segue_credential_watches',
      help: 'WebSocket connections and SSE subscription streams this API instance holds open on behalf of a credential, each ended when its credential is revoked or expires',
      registers: [registry],
    }),
    subscriptionResults: new Counter({
      name: 'segue_subscription_results_total',
      help: 'Results of subscriptions over WebSocket and SSE (snapshots included), by whether each was executed for its subscription or shared from another one with the same query, variables and viewer',
      labelNames: ['execution'] as const,
      registers: [registry],
    }),
    statusStreams: new Gauge({
      name: 'segue_fal_status_streams_open',
      help: "fal status streams this process holds open now",
      registers: [registry],
    }),
    statusStreamFallbacks: new Counter({
      name: 'segue_fal_status_stream_fallbacks_total',
      help: 'Requests whose status streams kept failing, followed by polling instead',
      registers: [registry],
    }),
    webhookWaits: new Counter({
      name: 'segue_fal_webhook_waits_total',
      help: "Finished requests whose result a worker awaited from fal's webhook (FAL_WEBHOOK_WAIT_MS), by how the answer came: with the webhook, or read from fal once the wait had passed (reads that keep counting: webhooks are not reaching the API)",
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    reconcileSweepFailures: new Counter({
      name: 'segue_reconcile_sweep_failures_total',
      help: 'Reconciler sweeps that failed (the pass went on with the others), by sweep',
      labelNames: ['sweep'] as const,
      registers: [registry],
    }),
    tracking: new Gauge({
      name: 'segue_fal_requests_tracked',
      help: 'fal requests this process is tracking now',
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
