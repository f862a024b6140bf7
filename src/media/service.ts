import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { MediaError } from './errors.ts';
import { mediaTools, type MediaTools } from './ffmpeg.ts';
import { renderPosters } from './poster.ts';
import { ToolProcess } from './tool-process.ts';
import { downloadToFile, type FetchPolicy } from './safe-fetch.ts';
import { createMediaStorage, type MediaStorage } from './storage.ts';

/** Where the local preview provider renders; the only place a `file:` result may come from. */
export const RENDER_ROOT = join(tmpdir(), 'segue-renders');

/**
 * The media layer as the application uses it: one storage driver, the ffmpeg tools, and the
 * download policy from configuration (size cap, timeout, private networks).
 */
export interface MediaService {
  storage(): Promise<MediaStorage>;
  tools(): Promise<MediaTools>;
  /** The tools for one-frame jobs (posters): the quickest to start, unless FFMPEG_PATH names one. */
  frameTools(): Promise<MediaTools>;
  /** Ends the helper process that runs the tools. */
  close(): void;
  policy: FetchPolicy & { maxBytes: number; timeoutMs: number };
  /** A private temporary directory, removed by `done()`. */
  workdir(prefix: string): Promise<{ dir: string; done(): Promise<void> }>;
  /** Downloads a URL (SSRF-guarded, capped, retried) into a file. */
  download(url: string, file: string, options?: { signal?: AbortSignal }): Promise<void>;
  /**
   * Copies a provider's output into storage: streamed from its URL, or moved from a local render.
   * With `keepLocal`, the result also names a local file of it (the stored file itself on the
   * local driver, else the download) for further work, kept until `release()`.
   */
  storeFrom(source: string, key: string, contentType: string, options?: { keepLocal?: boolean }): Promise<StoredCopy>;
  /** A local file of a stored object (the local driver's own path, or a download to `dir`). */
  localCopy(key: string, dir: string): Promise<string>;
  /** The first frame of a stored video, stored next to it as JPEG (from `localVideo` when it is at hand). */
  poster(videoKey: string, posterKey: string, localVideo?: string): Promise<{ key: string; url: string }>;
  /**
   * Posters of several stored videos, several to an ffmpeg run (see POSTERS_PER_RUN): each with
   * its own outcome, the stored poster or the error that kept it from being stored.
   */
  posters(items: readonly PosterItem[]): Promise<Array<{ key: string; url: string } | Error>>;
  /** Removes everything stored under these folder prefixes (deleted rows' files); returns the count. */
  removeFolders(prefixes: readonly string[]): Promise<number>;
}

/** A local file of something stored: the stored file itself (local driver), or a temporary download. */
export interface LocalFile {
  file: string;
  /** A download of its own (removed by `release()`), not the stored file. */
  temporary: boolean;
  release(): Promise<void>;
}

export interface PosterItem {
  videoKey: string;
  posterKey: string;
  /** A local file of the video, when one is at hand (no download then). */
  localVideo?: string | undefined;
}

export interface StoredCopy {
  key: string;
  url: string;
  /** With `keepLocal`: a local file of what was stored, until `release()`. */
  local?: LocalFile;
}

const NOTHING_TO_RELEASE = async () => undefined;

export function createMediaService(config: Config, logger: Logger): MediaService {
  const { media } = config;
  let storage: Promise<MediaStorage> | null = null;
  let tools: Promise<MediaTools> | null = null;
  let frameTools: Promise<MediaTools> | null = null;
  // ffmpeg and ffprobe start from a small helper process, off this one's event loop.
  const helper = new ToolProcess();
  // Every run at MEDIA_NICE, in the helper or (should it be down) from here.
  const viaHelper = (found: MediaTools): MediaTools => ({
    ...found,
    run: (binary, args, options = {}) => helper.run(binary, args, { ...options, nice: options.nice ?? media.nice }),
  });
  const policy = {
    allowPrivateNetwork: media.allowPrivateNetwork,
    maxBytes: media.maxBytes,
    timeoutMs: media.fetchTimeoutMs,
  };
  const log = logger.child({ component: 'media' });

  const service: MediaService = {
    storage: () =>
      (storage ??= createMediaStorage(
        media.storage.driver === 'local'
          ? { driver: 'local', root: media.storage.root, publicBaseUrl: media.storage.publicBaseUrl, signingSecret: config.images.urlSecret }
          : {
              driver: 's3',
              bucket: media.storage.bucket,
              region: media.storage.region,
              forcePathStyle: media.storage.forcePathStyle,
              timeoutMs: media.storage.timeoutMs,
              ...(media.storage.endpoint ? { endpoint: media.storage.endpoint } : {}),
              ...(media.storage.credentials ? { credentials: media.storage.credentials } : {}),
              ...(media.storage.publicBaseUrl ? { publicBaseUrl: media.storage.publicBaseUrl } : {}),
            },
      )),
    tools: () => (tools ??= mediaTools({ ffmpegPath: media.ffmpegPath, ffprobePath: media.ffprobePath }).then(viaHelper)),
    frameTools: () =>
      (frameTools ??= mediaTools({ ffmpegPath: media.ffmpegPath, ffprobePath: media.ffprobePath, prefer: 'npm-first' }).then(viaHelper)),
    close: () => helper.close(),
    policy,
    async workdir(prefix) {
      await mkdir(tmpdir(), { recursive: true });
      const dir = await mkdtemp(join(tmpdir(), `segue-${prefix}-`));
      return { dir, done: () => rm(dir, { recursive: true, force: true }) };
    },
    async download(url, file, options = {}) {
      await downloadToFile(url, file, { ...policy, ...(options.signal ? { signal: options.signal } : {}) });
    },
    async storeFrom(source, key, contentType, options = {}) {
      const store = await service.storage();
      if (source.startsWith('file:')) {
        // Only renders of the local preview provider, never a path from outside.
        const file = resolve(fileURLToPath(source));
        if (!file.startsWith(RENDER_ROOT + sep)) throw new MediaError('FETCH_BLOCKED', 'A local file outside the render directory.');
        const stored = await store.put(key, file, contentType);
        return { key, url: stored.url };
      }
      if (store.path) {
        // Straight into place: the download is written beside its target and renamed (atomic).
        await service.download(source, store.path(key));
        const local = options.keepLocal ? { file: store.path(key), temporary: false, release: NOTHING_TO_RELEASE } : undefined;
        return { key, url: store.url(key), ...(local ? { local } : {}) };
      }
      const work = await service.workdir('copy');
      let kept = false;
      try {
        const file = join(work.dir, 'download');
        await service.download(source, file);
        const stored = await store.put(key, file, contentType);
        log.debug({ key, bytes: stored.size }, 'stored');
        kept = options.keepLocal === true;
        return { key, url: stored.url, ...(kept ? { local: { file, temporary: true, release: work.done } } : {}) };
      } finally {
        if (!kept) await work.done();
      }
    },
    async localCopy(key, dir) {
      const store = await service.storage();
      if (store.path) return store.path(key);
      if (!store.get) throw new MediaError('STORAGE_NOT_FOUND', `The ${store.driver} storage cannot read objects back.`);
      const file = join(dir, key.replace(/\//g, '_'));
      await pipeline(await store.get(key), createWriteStream(file));
      return file;
    },
    async removeFolders(prefixes) {
      const store = await service.storage();
      let removed = 0;
      for (const prefix of prefixes) removed += await store.removePrefix(prefix);
      return removed;
    },
    async poster(videoKey, posterKey, localVideo) {
      const [stored] = await service.posters([{ videoKey, posterKey, localVideo }]);
      if (stored instanceof Error) throw stored;
      return stored!;
    },
    async posters(items) {
      const store = await service.storage();
      const tools = await service.frameTools();
      if (store.path) {
        // Straight into place, beside its video (written aside and renamed, as downloads are): no
        // work directory and no copy, which cost the worker more CPU than the rest of a poster.
        const rendered = await renderPosters(
          items.map((item) => ({ video: item.localVideo ?? store.path!(item.videoKey), output: store.path!(item.posterKey) })),
          { tools },
        );
        return rendered.map((outcome, k) => (outcome instanceof Error ? outcome : { key: items[k]!.posterKey, url: store.url(items[k]!.posterKey) }));
      }
      const work = await service.workdir('poster');
      try {
        const outcomes: Array<{ key: string; url: string } | Error> = new Array(items.length);
        const videos = await Promise.all(
          items.map((item) => (item.localVideo ? Promise.resolve(item.localVideo) : service.localCopy(item.videoKey, work.dir)).catch((error: unknown) => error as Error)),
        );
        const ready = items.flatMap((_, k) => (videos[k] instanceof Error ? [] : [k]));
        for (const k of items.keys()) if (videos[k] instanceof Error) outcomes[k] = videos[k];
        const rendered = await renderPosters(
          ready.map((k) => ({ video: videos[k] as string, output: join(work.dir, `poster-${k}.jpg`) })),
          { tools },
        );
        await Promise.all(
          ready.map(async (k, j) => {
            const outcome = rendered[j]!;
            if (outcome instanceof Error) {
              outcomes[k] = outcome;
              return;
            }
            const stored = await store.put(items[k]!.posterKey, outcome.output, 'image/jpeg').catch((error: unknown) => error as Error);
            outcomes[k] = stored instanceof Error ? stored : { key: items[k]!.posterKey, url: stored.url };
          }),
        );
        return outcomes;
      } finally {
        await work.done();
      }
    },
  };
  return service;
}

