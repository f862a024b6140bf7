/**
 * Process entrypoint: `tsx src/main.ts [all|api|worker]`. `all` (the default, `npm start`) runs the
 * API and a worker in one process; `api` and `worker` run one role each, for scaling them apart.
 */
import { ConfigError, loadConfig } from './config.ts';
import { startApiServer } from './http/server.ts';
import { createSegue } from './runtime.ts';

const ROLES = ['all', 'api', 'worker'] as const;
type Role = (typeof ROLES)[number];

async function main() {
  const role = (process.argv[2] ?? 'all') as Role;
  if (!ROLES.includes(role)) {
    console.error(`Unknown role "${role}": use one of ${ROLES.join(', ')}.`);
    process.exit(2);
  }
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  const segue = createSegue(config);
  const log = segue.logger;
  const stops: Array<() => Promise<void>> = [];

  if (role === 'all' || role === 'api') {
    const api = await startApiServer(segue);
    stops.push(api.close);
    log.info({ url: `${api.url}/graphql` }, `Segue API listening: GraphiQL at ${api.url}/graphql`);
  }

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      log.error('shutdown took longer than 10 s; exiting');
      process.exit(1);
    }, 10_000);
    timer.unref();
    for (const stop of stops) await stop().catch((err) => log.error({ err }, 'error while stopping'));
    await segue.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
