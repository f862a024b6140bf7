import type { Readable } from 'node:stream';
import { MediaError } from './errors.ts';
import type { LocalStorageOptions } from './storage-local.ts';
import type { S3StorageOptions } from './storage-s3.ts';

/**
 * Where rendered videos, posters and subtitle files go, and the URL clients fetch them from.
 * Keys are relative, slash-separated paths (`transitions/<id>/video.mp4`); the same key gives the
 * same URL in every driver, so rows store keys and URLs can be rebuilt when the base URL moves.
 */
export interface MediaStorage {
  readonly driver: 'local' | 's3';
  /** Uploads a local file; readers never see a partial object. */
  put(key: string, file: string, contentType: string): Promise<StoredObject>;
  /** The public URL of a key (whether or not it exists). */
  url(key: string): string;
  /** Reads an object back; MediaError STORAGE_NOT_FOUND when there is none. */
  get?(key: string): Promise<Readable>;
  /** Where a key lives on this machine's disk (the local driver): written in place, read without a copy. */
  path?(key: string): string;
  /** The keys stored under a folder prefix (`transitions/<id>/`), sorted. */
  list(prefix: string): Promise<string[]>;
  /** Removes everything stored under a folder prefix; returns how many objects went (none is no error). */
  removePrefix(prefix: string): Promise<number>;
  /**
   * A URL that reads a private object (under `private/`) until `expiresAt`: a signed Segue URL
   * (local) or a presigned GET (S3). Private objects are never served without one.
   */
  privateUrl(key: string, expiresAt: Date): Promise<string>;
  /** Size and content type of an object, or null when there is none. */
  head(key: string): Promise<{ size: number; contentType: string | null } | null>;
  /** Removes an object; no error when it is already gone. */
  remove(key: string): Promise<void>;
  close?(): Promise<void>;
}

/** Keys under this prefix are private: the local driver's /media route serves them only signed. */
export const PRIVATE_PREFIX = 'private/';

export interface StoredObject {
  key: string;
  url: string;
  size: number;
}

export type MediaStorageOptions = ({ driver: 'local' } & LocalStorageOptions) | ({ driver: 's3' } & S3StorageOptions);

/** Loads only the driver asked for: the AWS SDK is large, and a local setup never needs it. */
export async function createMediaStorage(options: MediaStorageOptions): Promise<MediaStorage> {
  if (options.driver === 'local') return (await import('./storage-local.ts')).createLocalStorage(options);
  return (await import('./storage-s3.ts')).createS3Storage(options);
}

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Keys become file paths and URL paths: letters, digits, `.`, `_`, `-` in `/`-separated
 * segments, none empty, none starting with a dot (so no `..`, no hidden files), at most 512
 * characters. Anything else is a bug in the caller, never something to sanitise silently.
 */
export function assertStorageKey(key: string): void {
  const ok = key.length > 0 && key.length <= 512 && key.split('/').every((segment) => SEGMENT.test(segment));
  if (!ok) throw new MediaError('STORAGE_INVALID_KEY', `Invalid storage key: ${JSON.stringify(key.slice(0, 100))}`);
}

/** A folder prefix as list() and removePrefix() take it: a valid key followed by `/`. */
export function assertStoragePrefix(prefix: string): void {
  if (!prefix.endsWith('/')) throw new MediaError('STORAGE_INVALID_KEY', `A prefix ends with "/": ${JSON.stringify(prefix.slice(0, 100))}`);
  assertStorageKey(prefix.slice(0, -1));
}

/** `base` + `/` + key, with each segment URL-encoded (a no-op for valid keys, but cheap insurance). */
export function joinUrl(base: string, key: string): string {
  return `${base.replace(/\/+$/, '')}/${key.split('/').map(encodeURIComponent).join('/')}`;
}
