import { createFalClient } from '@fal-ai/client';
import { blobFrom, File as FileFromDisk } from 'fetch-blob/from.js';
import type { Config } from '../config.ts';

/**
 * fal's storage (`fal.storage.upload`, PROTOCOL.md §6): the client asks fal for an upload URL
 * (through the proxy, with the key), PUTs the bytes there directly, and gets back a CDN URL that
 * fal's runners can always fetch. Segue uses it for images fal could not reach otherwise.
 */
export interface FalImageStorage {
  /** Uploads a local file; returns its fal URL. */
  upload(file: string, contentType: string, fileName: string): Promise<string>;
}

const UPLOAD_TIMEOUT_MS = 60_000;

export function createFalImageStorage(config: Config): FalImageStorage {
  const { fal } = config;
  const client = createFalClient({
    ...(fal.key ? { credentials: fal.key } : {}),
    ...(fal.proxyUrl ? { proxyUrl: { url: fal.proxyUrl, when: 'always' as const } } : {}),
    suppressLocalCredentialsWarning: true,
    // Every call out is bounded: the initiate call and the PUT of the bytes alike.
    fetch: (input, init) => {
      const timeout = AbortSignal.timeout(UPLOAD_TIMEOUT_MS);
      return globalThis.fetch(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout });
    },
  });
  return {
    async upload(file, contentType, fileName) {
      // A file-backed Blob: the bytes are read from disk as the PUT sends them, so an upload holds
      // a chunk in memory, not the image. Not node's fs.openAsBlob: once one of its Blobs has been
      // read, Node 20 crashes the process at the next heap snapshot (--heapsnapshot-signal,
      // --heapsnapshot-near-heap-limit, v8.writeHeapSnapshot), a dangling file-handle reader left
      // in its cleanup queue. fetch-blob reads with fs.createReadStream.
      const blob = await blobFrom(file, contentType);
      // fal's client takes any Blob; fetch (undici) sends one of fetch-blob's by its stream().
      return client.storage.upload(new FileFromDisk([blob], fileName, { type: contentType }));
    },
  };
}
