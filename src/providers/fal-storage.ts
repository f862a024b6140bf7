import { createFalClient } from '@fal-ai/client';
import { blobFrom, File as FileFromDisk } from 'fetch-blob/from.js';
import type { Config } from '../config.ts';
import { withDeadline } from './deadline.ts';

/**
 * fal's storage (`fal.storage.upload`, PROTOCOL.md §6): the client asks fal for an upload URL
 * (through the proxy, with the key), PUTs the bytes there directly, and gets back a CDN URL that
 * fal's runners can always fetch. Segue uses it for images fal could not reach otherwise.
 */
export interface FalImageStorage {
  /** Uploads a local file; returns its fal URL. */
  upload(file: string, contentType: string, fileName: string): Promise<string>;
}

export function createFalImageStorage(config: Config): FalImageStorage {
  const { fal } = config;
  const client = createFalClient({
    ...(fal.key ? { credentials: fal.key } : {}),
    ...(fal.proxyUrl ? { proxyUrl: { url: fal.proxyUrl, when: 'always' as const } } : {}),
    suppressLocalCredentialsWarning: true,
    // Every call out is bounded (FAL_UPLOAD_TIMEOUT_MS), the reading of its answer included: the
    // initiate call and the PUT of the bytes alike.
    fetch: (input, init) => withDeadline(fal.uploadTimeoutMs, init?.signal ?? undefined, (signal) => answered(input, init, signal)),
  });
  return {
    async upload(file, contentType, fileName) {
      // A file-backed Blob: the bytes are read from disk as the PUT sends them, so an upload holds
      // a chunk in memory, not the image. Not node's fs.openAsBlob: after one of its Blobs has
      // been read, Node 20.20 was seen to crash the process (SIGSEGV in
      // node::fs::FileHandleReadWrap::MemoryInfo) at its next heap snapshot (--heapsnapshot-signal,
      // --heapsnapshot-near-heap-limit, v8.writeHeapSnapshot). fetch-blob reads with
      // fs.createReadStream. fal's client reads its size, name and type, and hands it (or, past
      // 90 MB, its slices) to fetch as the PUT's body (see streamedBody).
      return client.storage.upload(new FileFromDisk([await blobFrom(file, contentType)], fileName, { type: contentType }));
    },
  };
}

/** Statuses whose answer has no body (fetch's Response refuses one). */
const NULL_BODY = new Set([204, 205, 304]);

/**
 * One call, its answer read in full, and then the call is over: a storage server may answer a PUT
 * before it has read the body (a signed URL refused up front) and keep the connection, reading
 * nothing more; fetch would go on offering it the unsent bytes, holding the file open, until the
 * deadline (and with no deadline left once the call has settled, without end). Ending the call
 * here cancels the body's stream, which closes the file. A 2xx that came before the whole body
 * had gone would be cut short here and still count as stored; storage servers answer success
 * only once they have the bytes.
 */
async function answered(input: string | URL | Request, init: RequestInit | undefined, deadline: AbortSignal): Promise<Response> {
  const call = new AbortController();
  const follow = () => call.abort(deadline.reason);
  if (deadline.aborted) follow();
  else deadline.addEventListener('abort', follow, { once: true });
  try {
    const response = await globalThis.fetch(input, { ...init, ...streamedBody(init), signal: call.signal });
    const body = NULL_BODY.has(response.status) ? null : await response.arrayBuffer();
    // The bytes as read: already decoded, and of their own length.
    const headers = new Headers(response.headers);
    headers.delete('content-encoding');
    headers.delete('content-length');
    return new Response(body, { status: response.status, statusText: response.statusText, headers });
  } finally {
    deadline.removeEventListener('abort', follow);
    call.abort();
  }
}

/**
 * A Blob that is not Node's own (fetch-blob's, read from disk) goes to fetch as its stream, with
 * its length. Node's fetch sends such a Blob by its stream() only up to undici 6 (Node 20 and
 * 22); undici 7 (Node 24) would send the text "[object File]" in its place. The length is set by
 * hand because a stream has none, and signed PUT URLs may refuse a chunked body (S3 answers 411).
 */
function streamedBody(init: RequestInit | undefined): RequestInit {
  const body = init?.body as unknown;
  if (!isForeignBlob(body)) return {};
  const headers = new Headers(init!.headers);
  headers.set('content-length', String(body.size));
  return { body: body.stream(), headers, duplex: 'half' } as RequestInit;
}

const isForeignBlob = (body: unknown): body is Blob =>
  typeof body === 'object' &&
  body !== null &&
  !(body instanceof Blob) &&
  typeof (body as Blob).stream === 'function' &&
  /^(Blob|File)$/.test(String((body as { [Symbol.toStringTag]?: unknown })[Symbol.toStringTag]));
