import { createWriteStream, openAsBlob } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import busboy from 'busboy';
import { createGraphQLError, type Plugin } from 'graphql-yoga';

/**
 * GraphQL multipart requests (the spec graphql-yoga implements: `operations`, `map`, then the
 * files), parsed as a stream: each file goes straight to a temporary file on disk, so an upload
 * is never held whole in memory (Yoga's own parser buffers every file). Resolvers get a standard
 * `File` backed by that file; `uploadedFile()` tells them where it is. The directory is removed
 * once the response is sent.
 */
export interface UploadedFile {
  path: string;
  /** The file went over the size cap: only the first `maxBytes` bytes were kept. */
  truncated: boolean;
  name: string;
  type: string;
}

const uploads = new WeakMap<object, UploadedFile>();

/** Where an uploaded `File` argument lives on disk (null for a File that came another way). */
export const uploadedFile = (file: unknown): UploadedFile | null =>
  typeof file === 'object' && file !== null ? (uploads.get(file) ?? null) : null;

const isMultipart = (request: Request) =>
  request.method === 'POST' && (request.headers.get('content-type') ?? '').toLowerCase().startsWith('multipart/form-data');

export function useStreamingUploads(options: { maxFileBytes: number; maxFiles?: number }): Plugin {
  const directories = new WeakMap<Request, string>();
  return {
    onRequestParse({ request, setRequestParser }) {
      if (!isMultipart(request)) return;
      setRequestParser(async (req) => {
        const dir = await mkdtemp(join(tmpdir(), 'segue-upload-'));
        directories.set(req, dir);
        return parseMultipart(req, dir, options.maxFileBytes, options.maxFiles ?? 2);
      });
    },
    onResponse({ request }) {
      const dir = directories.get(request);
      if (dir) void rm(dir, { recursive: true, force: true });
    },
  };
}

type Operations = Record<string, unknown> | Array<Record<string, unknown>>;

async function parseMultipart(request: Request, dir: string, maxFileBytes: number, maxFiles: number): Promise<Operations> {
  if (!request.body) throw badRequest('The multipart request has no body.');
  const fields = new Map<string, string>();
  const files = new Map<string, File>();
  const writes: Array<Promise<void>> = [];
  const parser = busboy({
    headers: { 'content-type': request.headers.get('content-type') ?? '' },
    limits: { fileSize: maxFileBytes, files: maxFiles, fields: 10, fieldSize: 1024 * 1024, parts: maxFiles + 10 },
  });
  let count = 0;
  parser.on('field', (name, value) => fields.set(name, value));
  parser.on('file', (name, stream, info) => {
    const path = join(dir, `file-${++count}`);
    const upload: UploadedFile = { path, truncated: false, name: info.filename ?? 'upload', type: info.mimeType };
    stream.on('limit', () => {
      upload.truncated = true;
    });
    writes.push(
      pipeline(stream, createWriteStream(path)).then(async () => {
        // Only a stand-in for the File argument: resolvers read the file at upload.path, never
        // these bytes. Reading an openAsBlob Blob in-process can make Node 20 crash at the next
        // heap snapshot (see src/providers/fal-storage.ts).
        const blob = await openAsBlob(path, { type: info.mimeType });
        const file = new File([blob], upload.name, { type: info.mimeType });
        uploads.set(file, upload);
        files.set(name, file);
      }),
    );
  });
  try {
    // The server's body stream (a WHATWG stream, async-iterable) flows chunk by chunk into busboy.
    await pipeline(Readable.from(request.body as unknown as AsyncIterable<Uint8Array>), parser);
    await Promise.all(writes);
  } catch (error) {
    throw badRequest(`The multipart request could not be read: ${(error as Error).message}`);
  }

  const operationsText = fields.get('operations');
  if (!operationsText) throw badRequest('Missing multipart form field "operations".');
  let operations: Operations;
  let map: Record<string, string[]> = {};
  try {
    operations = JSON.parse(operationsText) as Operations;
    if (fields.has('map')) map = JSON.parse(fields.get('map')!) as Record<string, string[]>;
  } catch {
    throw badRequest('Multipart form fields "operations" and "map" must be JSON.');
  }
  for (const [name, paths] of Object.entries(map)) {
    const file = files.get(name);
    if (!file || !Array.isArray(paths)) throw badRequest(`The map names a file "${name}" that the request does not carry.`);
    for (const path of paths) setPath(operations, String(path), file);
  }
  return operations;
}

function setPath(target: unknown, path: string, value: unknown) {
  const keys = path.split('.');
  let current = target as Record<string, unknown>;
  for (const [i, key] of keys.entries()) {
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') return;
    if (i === keys.length - 1) current[key] = value;
    else {
      if (typeof current[key] !== 'object' || current[key] === null) current[key] = {};
      current = current[key] as Record<string, unknown>;
    }
  }
}

const badRequest = (message: string) =>
  createGraphQLError(message, { extensions: { http: { status: 400 }, code: 'BAD_USER_INPUT' } });
