import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import sharp from 'sharp';
import { sendJson } from './http.ts';
import type { FaultBook } from './faults.ts';
import type { FalCounters } from './types.ts';

/** Where fal's storage serves uploaded files (PROTOCOL.md §6); the emulator serves them at `/files/...` of its own. */
export const FAL_CDN_ORIGIN = 'https://v3.fal.media';
const FILE_PATH = /^\/files\/emulator\/([0-9a-f-]{36})\/([^/]+)$/;
const UPLOAD_PATH = /^\/_storage\/upload\/([0-9a-f-]{36})$/;
const MAX_UPLOAD_BYTES = 90 * 1024 * 1024;

export interface StoredFile {
  bytes: Buffer;
  contentType: string;
  /** What sharp read, for images; null for anything it cannot read. */
  image: { format: string; width: number; height: number } | null;
}

/**
 * fal's storage API as the client uses it: `POST rest.fal.ai/storage/upload/initiate` (through
 * the proxy, with the key) answers `{upload_url, file_url}`; the client PUTs the bytes straight to
 * `upload_url` (no key, no proxy), so it points at this server; `file_url` is a fal CDN URL, which
 * the emulator's model reads from here (it never goes to the internet) and which is served at
 * `<emulator>/files/emulator/<id>/<name>` for tests that want the bytes.
 */
export class StorageEmulator {
  private readonly pending = new Map<string, { contentType: string; fileName: string }>();
  private readonly files = new Map<string, StoredFile>();

  constructor(private readonly counters: FalCounters, private readonly faults: FaultBook, private readonly baseUrl: () => string) {}

  async initiate(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    const { content_type: contentType, file_name: fileName } = (body ?? {}) as { content_type?: unknown; file_name?: unknown };
    if (typeof contentType !== 'string' || typeof fileName !== 'string') {
      return sendJson(res, 422, { detail: [{ loc: ['body', 'content_type'], msg: 'Field required', type: 'missing' }] });
    }
    const id = randomUUID();
    const name = encodeURIComponent(fileName.replace(/[/\\]/g, '_')) || 'file';
    this.pending.set(id, { contentType, fileName: name });
    sendJson(res, 200, { upload_url: `${this.baseUrl()}/_storage/upload/${id}`, file_url: `${FAL_CDN_ORIGIN}/files/emulator/${id}/${name}` });
  }

  /** The PUT of an upload's bytes; true when the path was one. */
  async handlePut(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
    const match = UPLOAD_PATH.exec(path);
    if (!match || req.method !== 'PUT') return false;
    const id = match[1]!;
    const upload = this.pending.get(id);
    if (!upload) {
      sendJson(res, 404, { detail: 'Unknown upload' });
      return true;
    }
    const fault = this.faults.takeUpload();
    if (fault && 'hang' in fault) {
      // Nothing read, nothing answered: Node stops reading the socket once the request's buffer
      // is full, so the sender's bytes back up until it gives up.
      this.counters.hungCalls++;
      return true;
    }
    if (fault?.early) {
      // The whole answer, saying the connection will not serve another request (as storage
      // servers do when they answer before the body), and then nothing: the worst such a server
      // can do. The response is never ended and the connection stays open, reading nothing
      // more, until the client closes it.
      const text = JSON.stringify({ detail: `Upload refused (${fault.status})` });
      res.writeHead(fault.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), connection: 'close' });
      res.write(text);
      this.counters.uploadsRefused++;
      return true;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_UPLOAD_BYTES) {
        sendJson(res, 413, { detail: 'File too large for a single upload' });
        return true;
      }
      chunks.push(chunk);
    }
    if (fault) {
      this.counters.uploadsRefused++;
      sendJson(res, fault.status, { detail: `Upload refused (${fault.status})` });
      return true;
    }
    const bytes = Buffer.concat(chunks);
    const image = await sharp(bytes)
      .metadata()
      .then((m) => (m.format && m.width && m.height ? { format: m.format as string, width: m.width, height: m.height } : null))
      .catch(() => null);
    this.pending.delete(id);
    this.files.set(id, { bytes, contentType: String(req.headers['content-type'] ?? upload.contentType), image });
    this.counters.uploads++;
    this.counters.uploadedBytes += bytes.length;
    sendJson(res, 200, {});
    return true;
  }

  /** A file by its fal URL, or null when it is not one the emulator stored. */
  byUrl(url: string): StoredFile | null {
    if (!url.startsWith(`${FAL_CDN_ORIGIN}/`)) return null;
    const match = FILE_PATH.exec(url.slice(FAL_CDN_ORIGIN.length));
    return match ? (this.files.get(match[1]!) ?? null) : null;
  }

  isFalUrl = (url: string) => url.startsWith(`${FAL_CDN_ORIGIN}/`);

  /** GET of `/files/emulator/<id>/<name>`; true when the path was one. */
  serve(req: IncomingMessage, res: ServerResponse, path: string): boolean {
    const match = FILE_PATH.exec(path);
    if (!match || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
    const file = this.files.get(match[1]!);
    if (!file) {
      sendJson(res, 404, { detail: 'Not found' });
      return true;
    }
    res.writeHead(200, { 'content-type': file.contentType, 'content-length': file.bytes.length });
    res.end(req.method === 'HEAD' ? undefined : file.bytes);
    return true;
  }

  forgetPending(): void {
    this.pending.clear();
  }
}
