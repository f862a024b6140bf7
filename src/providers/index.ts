import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { MediaService } from '../media/service.ts';
import { createFalProvider } from './fal.ts';
import { createPreviewProvider } from './preview.ts';
import type { VideoProvider } from './provider.ts';

/** fal when FAL_KEY is set; otherwise the local ffmpeg preview, so Segue runs end to end without an account. */
export function createProvider(config: Config, media: MediaService, logger: Logger): VideoProvider {
  return config.provider === 'fal' ? createFalProvider(config, logger) : createPreviewProvider(config, media, logger);
}
