import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { isMediaError } from '../media/errors.ts';
import { renderPreview } from '../media/preview.ts';
import { RENDER_ROOT, type MediaService } from '../media/service.ts';
import { ProviderError, type GenerationInput, type GenerationResult, type RequestState, type VideoProvider } from './provider.ts';

interface Render {
  input: GenerationInput;
  state: 'IN_QUEUE' | 'IN_PROGRESS' | 'COMPLETED';
  output: string;
  error: ProviderError | null;
  canceled: boolean;
}

/**
 * The provider for machines without a fal key: it downloads the two images and renders a real
 * MP4 of the requested duration from front to tail with ffmpeg (crossfade, wipe or zoom by
 * transitionType), behind the same submit/status/result interface, so the pipeline, states,
 * events, retries and storage are the ones fal uses. Renders run PREVIEW_CONCURRENCY at a time
 * per process and wait IN_QUEUE before that. A request lives in this process only: after a crash
 * its id is unknown, the attempt fails (request lost) and is retried; a render costs nothing.
 */
export function createPreviewProvider(config: Config, media: MediaService, logger: Logger): VideoProvider {
  const renders = new Map<string, Render>();
  const waiting: string[] = [];
  let running = 0;
  const log = logger.child({ component: 'preview' });

  const pump = () => {
    while (running < config.media.previewConcurrency && waiting.length > 0) {
      const id = waiting.shift()!;
      const render = renders.get(id);
      if (!render || render.canceled) continue;
      running += 1;
      render.state = 'IN_PROGRESS';
      void run(id, render).finally(() => {
        running -= 1;
        pump();
      });
    }
  };

  async function run(id: string, render: Render) {
    const work = await media.workdir('preview');
    try {
      const front = join(work.dir, 'front');
      const tail = join(work.dir, 'tail');
      // Images in Segue's storage are read there; URL images are downloaded.
      const read = async (key: string | null | undefined, url: string, file: string) => {
        if (!key) return media.download(url, file).then(() => file);
        return media.localCopy(key, work.dir);
      };
      const [frontFile, tailFile] = await Promise.all([
        read(render.input.frontImageKey, render.input.frontImageUrl, front),
        read(render.input.tailImageKey, render.input.tailImageUrl, tail),
      ]);
      await renderPreview({
        frontImage: frontFile,
        tailImage: tailFile,
        durationSeconds: render.input.durationSeconds,
        transitionType: render.input.transitionType,
        output: render.output,
        tools: await media.tools(),
      });
    } catch (error) {
      // A download refused or failed for good (private network, 4xx, unknown host): not worth retrying.
      const blocked = isMediaError(error) && error.code.startsWith('FETCH_') && !error.retryable;
      // An image Segue may not or cannot fetch will not become fetchable by retrying; a failed
      // render or a network hiccup might.
      // The render is over, without a video: the request itself failed.
      render.error = new ProviderError(
        blocked ? 'IMAGE_UNAVAILABLE' : 'PREVIEW_RENDER_FAILED',
        `The preview could not be rendered: ${(error as Error).message}`,
        { retryable: !blocked, scope: 'request' },
      );
      log.warn({ requestId: id, err: error }, 'preview render failed');
    } finally {
      render.state = 'COMPLETED';
      await work.done();
    }
  }

  const known = (requestId: string) => {
    const render = renders.get(requestId);
    if (!render) {
      throw new ProviderError('FAL_REQUEST_LOST', 'This preview render is not known here (the process restarted).', {
        retryable: true,
        scope: 'request',
      });
    }
    return render;
  };

  return {
    name: 'preview',
    async submit(input) {
      await mkdir(RENDER_ROOT, { recursive: true });
      const requestId = `preview-${randomUUID()}`;
      renders.set(requestId, { input, state: 'IN_QUEUE', output: join(RENDER_ROOT, `${requestId}.mp4`), error: null, canceled: false });
      waiting.push(requestId);
      const queuePosition = waiting.length - 1;
      pump();
      return { requestId, queuePosition: renders.get(requestId)!.state === 'IN_QUEUE' ? queuePosition : null };
    },
    async status(requestId): Promise<RequestState> {
      const render = known(requestId);
      if (render.state === 'IN_QUEUE') return { state: 'IN_QUEUE', queuePosition: waiting.indexOf(requestId) };
      return { state: render.state };
    },
    async result(requestId): Promise<GenerationResult> {
      const render = known(requestId);
      if (render.state !== 'COMPLETED') throw new ProviderError('FAL_UNAVAILABLE', 'The render has not finished.', { retryable: true });
      if (render.error) {
        // Read once: the failed render is forgotten (its request is over).
        renders.delete(requestId);
        throw render.error;
      }
      // The file stays until it is stored; `forget` removes it.
      return { videoUrl: pathToFileURL(render.output).href, raw: { file: render.output } };
    },
    async cancel(requestId) {
      const render = renders.get(requestId);
      if (!render) return;
      render.canceled = true;
      const at = waiting.indexOf(requestId);
      // A render still waiting never runs: it is over (and forgotten) at once.
      if (at >= 0) {
        waiting.splice(at, 1);
        renders.delete(requestId);
      }
    },
    async forget(requestId) {
      const render = renders.get(requestId);
      renders.delete(requestId);
      if (render) await rm(render.output, { force: true });
    },
  };
}
