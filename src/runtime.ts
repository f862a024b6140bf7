import type { Config } from './config.ts';
import { createDb, type Db } from './db.ts';
import { createLogger, type Logger } from './logger.ts';

/**
 * The process's shared parts, built once by an entrypoint and handed to the API, the worker and
 * the CLI. Service functions take it (or the part they need) as their first argument.
 */
export interface Segue {
  config: Config;
  db: Db;
  logger: Logger;
  close(): Promise<void>;
}

export function createSegue(config: Config, options: { logger?: Logger } = {}): Segue {
  const logger = options.logger ?? createLogger(config);
  const db = createDb(config.databaseUrl);
  return {
    config,
    db,
    logger,
    async close() {
      await db.$disconnect();
    },
  };
}
