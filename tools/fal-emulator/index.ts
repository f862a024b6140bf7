import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createCounters } from './counters.ts';
import { FaultBook } from './faults.ts';
import { loadFixtures } from './fixtures.ts';
import { JobQueue } from './jobs.ts';
import { runModel } from './model.ts';
import { createRequestListener } from './server.ts';
import { createSigner } from './signing.ts';
import { StatusStreams } from './status-stream.ts';
import { StorageEmulator } from './storage.ts';
import type { ConfigPatch, EmulatorSettings, FalEmulator, FalEmulatorOptions } from './types.ts';
import { WebhookSender } from './webhooks.ts';

const CONFIGURABLE = new Set(['latencyMs', 'latencyJitterMs', 'capacity', 'cancelRunning', 'apiKey', 'streamKeepAliveMs', 'statusErrors']);

export type { FalCounters, FalEmulator, FalEmulatorOptions, FalFault, FalRequestRecord, RedeliverOptions } from './types.ts';

/**
 * Starts a local stand-in for fal's queue API (queue.fal.run) that the unmodified @fal-ai/client
 * can talk to through its proxy mode: `proxyUrl: { url: emulator.url, when: 'always' }`.
 */
export async function startFalEmulator(options: FalEmulatorOptions = {}): Promise<FalEmulator> {
  const settings: EmulatorSettings = {
    latencyMs: options.latencyMs ?? 1000,
    latencyJitterMs: options.latencyJitterMs ?? 0,
    capacity: options.capacity ?? Infinity,
    apiKey: options.apiKey ?? null,
    cancelRunning: options.cancelRunning ?? 'complete',
    webhookRetry: options.webhookRetry ?? { attempts: 3, delayMs: 200 },
    streamKeepAliveMs: options.streamKeepAliveMs ?? 15_000,
    statusErrors: options.statusErrors ?? true,
  };
  validate(settings);
  const fixtures = await loadFixtures();
  const signer = createSigner();
  const counters = createCounters();
  const faults = new FaultBook();
  const webhooks = new WebhookSender(signer, settings.webhookRetry, counters);
  // Output URLs point at this server, whose address is known only once it listens.
  let url = '';
  const jobs = new JobQueue(settings, counters, {
    run: (job) => runModel(job.input, job.injectedError, `${url}/files/${job.id}/output.mp4`, fixtures, storage),
    completed: (job) => {
      if (job.webhookUrl && job.answer) webhooks.deliver(job.id, job.webhookUrl, job.answer, faults.takeWebhook()?.delayMs ?? 0);
    },
  });
  const streams = new StatusStreams(jobs, counters, () => settings.streamKeepAliveMs);
  const storage = new StorageEmulator(counters, faults, () => url);

  const controls = {
    counters: () => ({ ...counters, ...jobs.gauges() }),
    requests: () => jobs.records(),
    configure(patch: ConfigPatch) {
      const next = { ...settings };
      for (const [key, value] of Object.entries(patch)) {
        // The HTTP control API passes untyped JSON here.
        if (!CONFIGURABLE.has(key)) throw new Error(`${key} cannot be configured at run time`);
        if (value !== undefined) Object.assign(next, { [key]: value });
      }
      validate(next);
      Object.assign(settings, next);
      jobs.pump();
    },
    inject: faults.inject.bind(faults),
    clearFaults: () => faults.clear(),
    reset() {
      faults.clear();
      webhooks.abortAll();
      streams.closeAll();
      jobs.reset();
      // Uploaded files stay, as on fal's CDN: images uploaded before a reset are still fetched.
      storage.forgetPending();
      Object.assign(counters, { ...createCounters(), streamsOpen: counters.streamsOpen });
    },
  };

  const server = createServer(createRequestListener({ jobs, faults, counters, streams, settings, signer, fixtures, controls, storage }));
  server.on('connection', () => (counters.connections += 1));
  const address = await listen(server, options.port ?? 0, options.host ?? '127.0.0.1');
  url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;

  return {
    url,
    jwksUrl: `${url}/.well-known/jwks.json`,
    ...controls,
    redeliverWebhook(requestId, redeliverOptions) {
      const job = jobs.get(requestId);
      if (!job) return Promise.reject(new Error(`unknown request ${requestId}`));
      return webhooks.redeliver(job, redeliverOptions);
    },
    async close() {
      jobs.stop();
      streams.closeAll();
      await webhooks.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive sockets would otherwise hold close() open until they time out.
        server.closeAllConnections();
      });
    },
  };
}

function validate(settings: EmulatorSettings): void {
  const { latencyMs, latencyJitterMs, capacity, cancelRunning, webhookRetry } = settings;
  if (!(latencyMs >= 0) || !(latencyJitterMs >= 0)) throw new Error('latencyMs and latencyJitterMs must be >= 0');
  if (!(capacity >= 1)) throw new Error('capacity must be >= 1');
  if (settings.apiKey !== null && typeof settings.apiKey !== 'string') throw new Error('apiKey must be a string or null');
  if (cancelRunning !== 'complete' && cancelRunning !== 'stop') throw new Error("cancelRunning must be 'complete' or 'stop'");
  if (!(webhookRetry.attempts >= 1) || !(webhookRetry.delayMs >= 0)) throw new Error('webhookRetry needs attempts >= 1 and delayMs >= 0');
  if (typeof settings.statusErrors !== 'boolean') throw new Error('statusErrors must be true or false');
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
