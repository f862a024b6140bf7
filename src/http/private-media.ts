import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LOCAL_UPLOAD_PATH, pendingUpload } from '../domain/images.ts';
import type { LocalStorage } from '../media/storage-local.ts';
import { PRIVATE_PREFIX } from '../media/storage.ts';
import { verifyResource } from '../media/signed-urls.ts';
import type { Segue } from '../runtime.ts';

const json = (res: ServerResponse, status: number, body: unknown) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

/**
 * The local storage driver's private files (images of an account, under `private/`): served only
 * with a valid, unexpired signature (Image.url, and the URL given to fal when Segue's address is
 * public). Returns false when the path is not a private one, so the public /media route serves it.
 */
export function privateMediaGuard(secret: string) {
  return (req: IncomingMessage, res: ServerResponse, path: string): 'allowed' | 'refused' | 'public' => {
    let key: string;
    try {
      key = decodeURIComponent(path.slice('/media/'.length));
    } catch {
      return 'public';
    }
    if (!key.startsWith(PRIVATE_PREFIX)) return 'public';
    const query = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
    const check = verifyResource(secret, 'read', key, query);
    if (check === 'ok') return 'allowed';
    json(res, 403, { error: check === 'expired' ? 'This URL has expired.' : 'This file needs a signed URL.' });
    return 'refused';
  };
}

/**
 * Direct uploads for the local driver: `PUT /uploads/images/<imageId>?expires=&signature=`, the
 * signed URL createImageUpload gave. The body streams to disk, capped at the declared size (and
 * IMAGE_MAX_BYTES); a Content-Type other than the declared one is refused, and so is a PUT while
 * completeImageUpload checks the file (409). completeImageUpload then checks what arrived.
 */
export function localUploadHandler(segue: Segue, storage: LocalStorage) {
  return async (req: IncomingMessage, res: ServerResponse, path: string) => {
    if (req.method === 'OPTIONS') {
      return void res
        .writeHead(204, { 'access-control-allow-origin': '*', 'access-control-allow-methods': 'PUT', 'access-control-allow-headers': 'content-type' })
        .end();
    }
    if (req.method !== 'PUT') return json(res, 405, { error: 'PUT the file here.' });
    const id = path.slice(LOCAL_UPLOAD_PATH.length);
    const query = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
    const check = verifyResource(segue.config.images.urlSecret, 'upload', id, query);
    if (check !== 'ok') return json(res, 403, { error: check === 'expired' ? 'This upload URL has expired.' : 'Invalid upload URL.' });
    const image = await pendingUpload(segue, id);
    if (!image) return json(res, 404, { error: 'No pending upload.' });
    // completeImageUpload is checking the file: it is not replaced under that check.
    const cors = { 'access-control-allow-origin': '*' };
    if (image.leaseUntil && image.leaseUntil > new Date()) {
      res.setHeader('connection', 'close');
      return void res
        .writeHead(409, { 'content-type': 'application/json', ...cors })
        .end(JSON.stringify({ error: 'completeImageUpload is checking this upload; try again in a moment.' }));
    }
    const type = (req.headers['content-type'] ?? '').toLowerCase();
    if (type !== image.declaredContentType) {
      res.setHeader('connection', 'close');
      return void res.writeHead(415, { 'content-type': 'application/json', ...cors }).end(JSON.stringify({ error: `Declared ${image.declaredContentType}, sent ${type || 'no type'}.` }));
    }
    const cap = Math.min(image.declaredBytes ?? 0, segue.config.images.maxBytes);
    const target = storage.path(image.uploadKey!);
    const partial = `${target}.part`;
    let bytes = 0;
    const limit = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length;
        callback(bytes > cap ? new Error('over the declared size') : null, chunk);
      },
    });
    try {
      await mkdir(dirname(target), { recursive: true });
      await pipeline(req, limit, createWriteStream(partial));
      await rename(partial, target);
    } catch (error) {
      await rm(partial, { force: true });
      res.setHeader('connection', 'close');
      return void res.writeHead(413, { 'content-type': 'application/json', ...cors }).end(JSON.stringify({ error: `The upload is ${(error as Error).message}.` }));
    }
    res.writeHead(200, { 'content-type': 'application/json', ...cors }).end(JSON.stringify({ bytes }));
  };
}
