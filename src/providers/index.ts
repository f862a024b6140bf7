import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { createFalProvider } from './fal.ts';
import type { VideoProvider } from './provider.ts';

/** fal when a key (or a proxy that holds one) is configured. */
export function createProvider(config: Config, logger: Logger): VideoProvider {
  return createFalProvider(config, logger);
}
