/**
 * Process entrypoint: `tsx src/main.ts [all|api|worker]`. `all` (the default, `npm start`) runs the
 * API and a worker in one process; `api` and `worker` run one role each, for scaling them apart.
 */
// First: V8's heap growth is set before the rest of the process evaluates (see heap-growth.ts).
import './heap-growth.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { redactedConfig } from './logger.ts';
import { createSegue } from './runtime.ts';

// Each role loads only its own modules: a worker holds no GraphQL schema, Yoga or WebSocket
// server in memory, and the API none of the worker's pipeline.

const ROLES = ['all', 'api', 'worker'] as const;
type Role = (typeof ROLES)[number];

function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
}

async function main() {
  const role = (process.argv[2] ?? 'all') as Role;
  if (!ROLES.includes(role)) {
    console.error(`Unknown role "${role}": use one of ${ROLES.join(', ')}.`);
    process.exit(2);
  }
  const config = configOrExit();
  const segue = createSegue(config);
  const log = segue.logger;
  log.debug({ config: redactedConfig(config), role }, 'configuration');
  // Stopped in this order: the worker first (its running jobs go back to the queue for other
  // workers), then the API.
  const stops: Array<() => Promise<void>> = [];

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      log.error('shutdown took longer than 10 s; exiting');
      exitAfterLogs(1);
    }, 10_000);
    timer.unref();
    for (const stop of stops) await stop().catch((err) => log.error({ err }, 'error while stopping'));
    await segue.close();
    log.info('stopped');
    exitAfterLogs(0);
  };
  // The logger writes asynchronously: exit once its last lines are out (a busy reader of the pipe
  // can take a moment), and within 2 s whatever happens.
  const exitAfterLogs = (code: number) => {
    const exit = () => process.exit(code);
    setTimeout(exit, 2_000).unref();
    log.flush(exit);
  };
  // Listening before anything starts: a signal during start-up still stops cleanly.
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  if (role === 'all' || role === 'worker') {
    const { storage } = segue.config.media;
    // The URLs a worker stores are built from its own settings and kept on the rows. Without
    // PUBLIC_URL or MEDIA_PUBLIC_URL they name localhost at its own PORT: right only for an API
    // there with no PUBLIC_URL, seen from that machine (a new user ran the API on another port).
    if (role === 'worker' && storage.driver === 'local' && storage.defaultPublicBaseUrl) {
      log.warn(
        { mediaUrl: storage.publicBaseUrl },
        `this worker has neither PUBLIC_URL nor MEDIA_PUBLIC_URL: the videos and posters it stores get URLs under ${storage.publicBaseUrl}, right only for an API at that address with no PUBLIC_URL, viewed from this machine. Set PUBLIC_URL to the API's address on every worker (or MEDIA_PUBLIC_URL to the API's /media)`,
      );
    }
    const { startWorker } = await import('./worker/worker.ts');
    const worker = await startWorker(segue);
    stops.unshift(worker.close);
    if (stopping) await worker.close();
    if (role === 'worker' && segue.config.opsPort !== null) {
      const { startOpsServer } = await import('./http/ops.ts');
      const ops = await startOpsServer(segue, segue.config.opsPort);
      stops.push(ops.close);
      log.info({ port: ops.port }, `worker health and metrics on :${ops.port}`);
    }
  }
  if (role === 'all' || role === 'api') {
    const { acceptQueueLimit, startApiServer } = await import('./http/server.ts');
    const api = await startApiServer(segue);
    stops.push(api.close);
    if (stopping) await api.close();
    else {
      const acceptQueue = acceptQueueLimit();
      log.info({ url: `${api.url}/graphql`, acceptQueue }, `Segue API listening: GraphiQL at ${api.url}/graphql`);
      if (acceptQueue !== null && acceptQueue < BURST_ACCEPT_QUEUE) {
        // Advice, not a fault: a stock Linux machine (4096) starts here.
        log.info(
          { acceptQueue },
          `net.core.somaxconn is ${acceptQueue}: when more browsers than that reconnect to this API at once (after a restart), the kernel drops some of their handshakes and they retry or reconnect. ${BURST_ACCEPT_QUEUE} or more avoids it (README, Live progress).`,
        );
      }
    }
  }
}

/** The accept queue under which a reconnect burst of 10,000 browsers sees resets (README, Live progress). */
const BURST_ACCEPT_QUEUE = 16_384;

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
