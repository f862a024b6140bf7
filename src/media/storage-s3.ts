import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { MediaError } from './errors.ts';
import { assertStorageKey, assertStoragePrefix, joinUrl, type MediaStorage } from './storage.ts';

export interface S3StorageOptions {
  bucket: string;
  /** Default us-east-1 (what most S3-compatible servers expect when they ignore regions). */
  region?: string | undefined;
  /** An S3-compatible server (MinIO, R2, s3rver, ...); default: AWS. */
  endpoint?: string | undefined;
  /** `endpoint/bucket/key` instead of `bucket.endpoint/key`; most self-hosted servers need it. */
  forcePathStyle?: boolean | undefined;
  /** Omitted: the AWS SDK's default chain (its environment variables, profiles, instance roles). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string | undefined } | undefined;
  /** Where clients fetch objects (a CDN, a public bucket domain); default: derived from the endpoint. */
  publicBaseUrl?: string | undefined;
  /** Prepended to every key, e.g. `segue/`. */
  keyPrefix?: string | undefined;
  cacheControl?: string | undefined;
  /**
   * Each request's bound: connecting, then silence on the socket (default 30 s). A server that
   * accepts and never answers fails the request instead of holding it forever.
   */
  timeoutMs?: number | undefined;
  /** Attempts per request, the SDK's own retries included (default 3). */
  maxAttempts?: number | undefined;
  /** Where the SDK logs (e.g. a pino child logger); default: nowhere. */
  logger?: Logger | undefined;
  /** Bring your own client (tests, custom middleware); the options above then only shape URLs. */
  client?: S3Client | undefined;
}

export interface S3Storage extends MediaStorage {
  readonly driver: 's3';
  readonly client: S3Client;
  get(key: string): Promise<Readable>;
  /** A presigned PUT of exactly this content type and length, for a client to upload directly. */
  presignPut(key: string, contentType: string, bytes: number, expiresAt: Date): Promise<{ url: string; headers: Record<string, string> }>;
  close(): Promise<void>;
}

export function createS3Storage(options: S3StorageOptions): S3Storage {
  const region = options.region ?? 'us-east-1';
  const prefix = options.keyPrefix ?? '';
  if (prefix) assertStorageKey(prefix.replace(/\/$/, ''));
  const ownClient = !options.client;
  const maxAttempts = options.maxAttempts ?? 3;
  const client =
    options.client ??
    new S3Client({
      region,
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle ?? false,
      credentials: options.credentials,
      maxAttempts,
      // Bounded by silence, not by duration: a large video may take minutes to upload.
      requestHandler: { connectionTimeout: options.timeoutMs ?? 30_000, socketTimeout: options.timeoutMs ?? 30_000 },
      // The default logger is silent except for one console warning on every failed streamed
      // PUT ("non-retryable streaming request"), which put() handles by retrying itself.
      logger: options.logger ?? silentLogger,
      // Since early 2025 the SDK adds CRC32 checksums in a chunked trailer to every upload, which
      // many S3-compatible servers reject or store verbatim. Against AWS itself keep the default.
      ...(options.endpoint ? { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' } : {}),
    });

  const objectKey = (key: string) => {
    assertStorageKey(key);
    return `${prefix}${key}`;
  };
  const url = (key: string) => joinUrl(publicBase(options, region), objectKey(key));

  return {
    driver: 's3',
    client,
    url,

    async put(key, file, contentType) {
      const Key = objectKey(key);
      const { size } = await stat(file).catch((error: unknown) => {
        throw new MediaError('STORAGE_FAILED', `Cannot read ${file}: ${(error as Error).message}`, { cause: error });
      });
      // The SDK cannot replay a stream body, so it never retries a streamed PUT; retry here, with
      // a fresh stream of the file each time.
      for (let attempt = 1; ; attempt++) {
        try {
          // A single PUT is atomic in S3: the object appears whole or not at all. ContentLength
          // lets the SDK stream the file instead of buffering it (single PUTs go up to 5 GB).
          await client.send(
            new PutObjectCommand({
              Bucket: options.bucket,
              Key,
              Body: createReadStream(file),
              ContentLength: size,
              ContentType: contentType,
              CacheControl: options.cacheControl,
            }),
          );
          return { key, url: url(key), size };
        } catch (raw) {
          const error = storageError(raw, `Could not upload ${Key} to bucket ${options.bucket}`, 'put');
          if (!error.retryable || attempt >= maxAttempts) throw error;
          await sleep(200 * 2 ** (attempt - 1));
        }
      }
    },

    async privateUrl(key, expiresAt) {
      // Signed from the start of the hour: the same URL for an hour (see signed-urls.ts).
      const signingDate = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000);
      const expiresIn = Math.min(7 * 24 * 3600, Math.ceil((expiresAt.getTime() - signingDate.getTime()) / 1000));
      return getSignedUrl(client, new GetObjectCommand({ Bucket: options.bucket, Key: objectKey(key) }), { expiresIn, signingDate });
    },

    async presignPut(key, contentType, bytes, expiresAt) {
      const expiresIn = Math.max(1, Math.ceil((expiresAt.getTime() - Date.now()) / 1000));
      const command = new PutObjectCommand({ Bucket: options.bucket, Key: objectKey(key), ContentType: contentType, ContentLength: bytes });
      // Content-Type is signed, so S3 refuses a PUT of another type; the length is checked again at completion.
      const url = await getSignedUrl(client, command, { expiresIn, signableHeaders: new Set(['content-type']) });
      return { url, headers: { 'content-type': contentType } };
    },

    async head(key) {
      try {
        const head = await client.send(new HeadObjectCommand({ Bucket: options.bucket, Key: objectKey(key) }));
        return { size: head.ContentLength ?? 0, contentType: head.ContentType ?? null };
      } catch (error) {
        const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
        if (e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) return null;
        throw storageError(error, `Could not read ${objectKey(key)} from bucket ${options.bucket}`, 'get');
      }
    },

    async remove(key) {
      try {
        await client.send(new DeleteObjectCommand({ Bucket: options.bucket, Key: objectKey(key) }));
      } catch (error) {
        throw storageError(error, `Could not delete ${objectKey(key)} from bucket ${options.bucket}`, 'put');
      }
    },

    async get(key) {
      const Key = objectKey(key);
      try {
        const object = await client.send(new GetObjectCommand({ Bucket: options.bucket, Key }));
        return object.Body as Readable;
      } catch (error) {
        throw storageError(error, `Could not read ${Key} from bucket ${options.bucket}`, 'get');
      }
    },

    async list(key) {
      assertStoragePrefix(key);
      const keys: string[] = [];
      let token: string | undefined;
      try {
        do {
          const page = await client.send(
            new ListObjectsV2Command({ Bucket: options.bucket, Prefix: `${prefix}${key}`, ContinuationToken: token }),
          );
          for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key.slice(prefix.length));
          token = page.IsTruncated ? page.NextContinuationToken : undefined;
        } while (token);
      } catch (error) {
        throw storageError(error, `Could not list ${prefix}${key} in bucket ${options.bucket}`, 'put');
      }
      return keys.sort();
    },

    async removePrefix(key) {
      const keys = await this.list(key);
      // DeleteObjects takes up to 1,000 keys per request.
      for (let i = 0; i < keys.length; i += 1000) {
        const batch = keys.slice(i, i + 1000);
        try {
          const result = await client.send(
            new DeleteObjectsCommand({
              Bucket: options.bucket,
              Delete: { Objects: batch.map((k) => ({ Key: `${prefix}${k}` })), Quiet: true },
            }),
          );
          if (result.Errors?.length) throw new Error(`${result.Errors.length} objects not deleted: ${result.Errors[0]!.Code ?? ''}`);
        } catch (error) {
          throw storageError(error, `Could not delete under ${prefix}${key} in bucket ${options.bucket}`, 'put');
        }
      }
      return keys.length;
    },

    async close() {
      if (ownClient) client.destroy();
    },
  };
}

type Logger = NonNullable<S3ClientConfig['logger']>;
const ignore = () => {};
const silentLogger: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore };

function publicBase(options: S3StorageOptions, region: string) {
  if (options.publicBaseUrl) return options.publicBaseUrl;
  if (!options.endpoint) return `https://${options.bucket}.s3.${region}.amazonaws.com`;
  const endpoint = new URL(options.endpoint);
  const basePath = endpoint.pathname.replace(/\/+$/, '');
  return options.forcePathStyle
    ? `${endpoint.origin}${basePath}/${options.bucket}`
    : `${endpoint.protocol}//${options.bucket}.${endpoint.host}${basePath}`;
}

function storageError(error: unknown, message: string, operation: 'put' | 'get'): MediaError {
  const e = error as { name?: string; message?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown };
  const status = e.$metadata?.httpStatusCode;
  // A 404 on a put means the bucket is missing: a configuration error, not a missing object.
  if (operation === 'get' && (e.name === 'NoSuchKey' || status === 404)) {
    return new MediaError('STORAGE_NOT_FOUND', `${message}: not found.`, { status: 404, cause: error });
  }
  // No status: the request never got an answer (DNS, refused, reset) and may work next time.
  const retryable = status === undefined || status >= 500 || status === 429 || e.$retryable !== undefined;
  return new MediaError('STORAGE_FAILED', `${message}: ${e.name ?? 'Error'} ${e.message ?? ''}`.trim(), {
    retryable,
    status,
    cause: error,
  });
}
