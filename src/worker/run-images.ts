import type { Transition } from '../generated/prisma/client.ts';
import { prepareRunImages, type FalUploader, type PreparedImage } from '../domain/run-images.ts';
import { createFalImageStorage } from '../providers/fal-storage.ts';
import { ProviderError } from '../providers/provider.ts';
import type { Segue } from '../runtime.ts';

const uploaders = new WeakMap<Segue, FalUploader>();

/**
 * The worker's side of "checks before spending": the run's images, checked and made reachable
 * for the provider, or the ProviderError that ends the run FAILED (IMAGE_UNAVAILABLE,
 * IMAGE_INVALID) before anything is submitted. A failure of our own infrastructure on the way
 * (storage, fal's storage API) is a retryable IMAGE_PREPARE_FAILED: the attempt goes back to the queue.
 */
export async function prepareImagesForSubmit(segue: Segue, row: Transition): Promise<{ front: PreparedImage; tail: PreparedImage } | ProviderError> {
  try {
    const falUploader = () => {
      let uploader = uploaders.get(segue);
      if (!uploader) uploaders.set(segue, (uploader = createFalImageStorage(segue.config)));
      return uploader;
    };
    const prepared = await prepareRunImages({ db: segue.db, media: segue.media, config: segue.config, logger: segue.logger, falUploader }, row, segue.provider.name === 'fal' ? 'fal' : 'preview');
    if (!prepared.ok) return new ProviderError(prepared.code, prepared.message, { retryable: false });
    return prepared;
  } catch (error) {
    segue.logger.warn({ err: error, transitionId: row.id }, 'images could not be prepared');
    return new ProviderError('IMAGE_PREPARE_FAILED', `The images could not be prepared: ${(error as Error).message}`, { retryable: true });
  }
}
