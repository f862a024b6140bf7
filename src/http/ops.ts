import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge } from 'prom-client';
import { requestsInFlight } from '../domain/claims.ts';
import type { Segue } from '../runtime.ts';
import { within } from '../within.ts';

const json = (res: ServerResponse, status: number, body: unknown) =>
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));

/**
 * /health: the process is up. /ready: PostgreSQL and Redis answer (an orchestrator's readiness
 * probe). /ready is public, so it names what is down and nothing more: driver messages carry
 * host names, ports and users, and go to the log instead.
 */
export function opsHandlers(segue: Segue) {
  registerQueueGauges(segue);
  return {
    health(_req: IncomingMessage, res: ServerResponse) {
      json(res, 200, { status: 'ok' });
    },
    async ready(_req: IncomingMessage, res: ServerResponse) {
      const check = async (name: string, probe: () => Promise<unknown>) => {
        try {
          await within(probe(), 2_000);
          return [name, 'ok'] as const;
        } catch (err) {
          segue.logger.warn({ err, check: name }, 'readiness check failed');
          return [name, 'down'] as const;
        }
      };
      const checks = Object.fromEntries(
        await Promise.all([
          check('postgres', () => segue.sql.query('SELECT 1', [])),
          check('redis', async () => {
            await segue.generationJobs.ready(1_500);
            return segue.generationJobs.redis.ping();
          }),
        ]),
      );
      const ok = Object.values(checks).every((v) => v === 'ok');
      json(res, ok ? 200 : 503, { status: ok ? 'ready' : 'unavailable', checks });
    },
    async metrics(_req: IncomingMessage, res: ServerResponse) {
      const { registry } = segue.metrics;
      res.writeHead(200, { 'content-type': registry.contentType }).end(await registry.metrics());
    },
  };
}

/** Queue-wide figures, read from Redis when Prometheus scrapes (not per event). */
function registerQueueGauges(segue: Segue) {
  const { registry } = segue.metrics;
  if (registry.getSingleMetric('segue_jobs')) return;
  new Gauge({
    name: 'segue_jobs',
    help: 'Generation jobs by state (all workers)',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      try {
        const depths = await within(segue.generationJobs.depths(), 2_000);
        for (const [state, n] of Object.entries(depths)) this.set({ state }, n);
      } catch {
        /* Redis down: keep the last values; /ready tells */
      }
    },
  });
  new Gauge({
    name: 'segue_fal_requests_in_flight',
    help: 'fal requests in flight across all workers (as the ledger counts them against FAL_CONCURRENCY)',
    registers: [registry],
    async collect() {
      try {
        this.set(await within(requestsInFlight(segue.sql, segue.config.fal), 2_000));
      } catch {
        /* PostgreSQL down: keep the last value; /ready tells */
      }
    },
  });
  new Gauge({
    name: 'segue_fal_concurrency',
    help: 'FAL_CONCURRENCY: the cap on fal requests in flight',
    registers: [registry],
    collect() {
      this.set(segue.config.fal.concurrency);
    },
  });
  new Gauge({
    name: 'segue_workers_online',
    help: 'Generation workers connected to the queue',
    registers: [registry],
    async collect() {
      try {
        this.set((await within(segue.generationJobs.onlineWorkers(), 2_000)).length);
      } catch {
        /* as above */
      }
    },
  });
}

/** For processes without the API (workers): /health, /ready and /metrics on their own port. */
export async function startOpsServer(segue: Segue, port: number, host = segue.config.host) {
  const ops = opsHandlers(segue);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const handle = path === '/health' ? ops.health : path === '/ready' ? ops.ready : path === '/metrics' ? ops.metrics : null;
    if (!handle) return void json(res, 404, { error: 'not found' });
    void Promise.resolve(handle(req, res)).catch(() => (res.headersSent ? res.end() : json(res, 500, { error: 'internal' })));
  });
  await new Promise<void>((resolve) => server.listen(port, host, () => resolve()));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
