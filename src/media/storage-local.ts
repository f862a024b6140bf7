import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { signResource } from './signed-urls.ts';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { MediaError } from './errors.ts';
import { assertStorageKey, assertStoragePrefix, joinUrl, type MediaStorage } from './storage.ts';

export interface LocalStorageOptions {
  /** Directory the files go under; created when missing. */
  root: string;
  /** The URL the HTTP server serves `root` at, e.g. http://localhost:4000/media. */
  publicBaseUrl: string;
  /** Signs URLs of private keys (see signed-urls.ts); without it, private keys get no URL. */
  signingSecret?: string | undefined;
}

export interface LocalStorage extends MediaStorage {
  readonly driver: 'local';
  get(key: string): Promise<Readable>;
  /** The file a key maps to. */
  path(key: string): string;
}

/**
 * Files under a directory, served by Segue's own static route (or any web server). The content
 * type is not stored: a static server derives it from the extension, so keys should carry one.
 */
export function createLocalStorage(options: LocalStorageOptions): LocalStorage {
  const root = path.resolve(options.root);
  const base = options.publicBaseUrl;

  const fileOf = (key: string) => {
    assertStorageKey(key);
    const file = path.join(root, ...key.split('/'));
    // assertStorageKey already rules out `..`; this is the belt to its braces.
    if (!file.startsWith(root + path.sep)) throw new MediaError('STORAGE_INVALID_KEY', `Key escapes the storage root: ${key}`);
    return file;
  };

  return {
    driver: 'local',
    path: fileOf,
    url: (key) => {
      assertStorageKey(key);
      return joinUrl(base, key);
    },

    async put(key, file, _contentType) {
      const target = fileOf(key);
      // Copy next to the target, then rename: rename within one directory is atomic, so a reader
      // sees the old file or the new one, never a partial copy (and a crash leaves only a .tmp).
      const partial = `${target}.${randomBytes(6).toString('hex')}.tmp`;
      try {
        await mkdir(path.dirname(target), { recursive: true });
        await copyFile(file, partial);
        await rename(partial, target);
        const { size } = await stat(target);
        return { key, url: joinUrl(base, key), size };
      } catch (error) {
        await rm(partial, { force: true });
        throw new MediaError('STORAGE_FAILED', `Could not store ${key}: ${(error as Error).message}`, { cause: error });
      }
    },

    async list(prefix) {
      assertStoragePrefix(prefix);
      const folder = fileOf(prefix.slice(0, -1));
      const entries = await readdir(folder, { recursive: true, withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return [];
        throw error;
      });
      return entries
        // Not the partial files of writes under way (a put's .tmp; a download's or a render's .part,
        // written beside their target and renamed into place): they are not stored objects yet.
        .filter((entry) => entry.isFile() && !entry.name.endsWith('.tmp') && !entry.name.endsWith('.part'))
        .map((entry) => prefix + path.relative(folder, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'))
        .sort();
    },

    async removePrefix(prefix) {
      const keys = await this.list(prefix);
      await rm(fileOf(prefix.slice(0, -1)), { recursive: true, force: true });
      return keys.length;
      },

    async privateUrl(key, expiresAt) {
      assertStorageKey(key);
      if (!options.signingSecret) throw new MediaError('STORAGE_FAILED', 'The local storage has no signing secret for private URLs.');
      return `${joinUrl(base, key)}?${signResource(options.signingSecret, 'read', key, expiresAt)}`;
    },

    async head(key) {
      try {
        const info = await stat(fileOf(key));
        // The local driver keeps no content type: it follows from the key's extension.
        return info.isFile() ? { size: info.size, contentType: null } : null;
      } catch {
        return null;
      }
    },

    async remove(key) {
      await rm(fileOf(key), { force: true });
    },

    async get(key) {
      const file = fileOf(key);
      try {
        if (!(await stat(file)).isFile()) throw new Error('not a file');
      } catch {
        throw new MediaError('STORAGE_NOT_FOUND', `No stored object ${key}.`);
      }
      return createReadStream(file);
    },
  };
}
