import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';

/** Real image files made with sharp, for the image rules and uploads. */
export async function makeImage(options: {
  width?: number;
  height?: number;
  format?: 'png' | 'jpeg' | 'webp' | 'gif' | 'tiff';
  /** EXIF to write (e.g. GPS tags, Orientation): the image then carries real metadata. */
  exif?: Record<string, Record<string, string>>;
  orientation?: number;
  /** Random pixels: a photo-like file of about width × height × 3 bytes that no encoder shrinks. */
  noise?: boolean;
  color?: string;
}): Promise<Buffer> {
  const width = options.width ?? 640;
  const height = options.height ?? 360;
  let image = options.noise
    ? sharp(Buffer.from(Array.from({ length: width * height * 3 }, () => Math.floor(Math.random() * 256))), { raw: { width, height, channels: 3 } })
    : sharp({ create: { width, height, channels: 3, background: options.color ?? '#3a7bd5' } });
  if (options.exif || options.orientation) {
    image = image.withMetadata({ ...(options.exif ? { exif: options.exif } : {}), ...(options.orientation ? { orientation: options.orientation } : {}) });
  }
  const format = options.format ?? 'png';
  return format === 'jpeg' ? image.jpeg({ quality: options.noise ? 100 : 80 }).toBuffer() : image.toFormat(format).toBuffer();
}

export interface ImageServer {
  url: string;
  /** Serves `bytes` at `path` (with the content type of its format). */
  set(path: string, bytes: Buffer, contentType?: string): string;
  /** GET requests per path. */
  hits(path: string): number;
  close(): Promise<void>;
}

/** A tiny HTTP server of images on 127.0.0.1, counting requests per path; unknown paths are 404. */
export async function startImageServer(): Promise<ImageServer> {
  const files = new Map<string, { bytes: Buffer; type: string }>();
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const file = files.get(path);
    if (!file) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': file.type, 'content-length': file.bytes.length }).end(file.bytes);
  });
  server.unref();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    set(path, bytes, contentType = 'image/png') {
      files.set(path, { bytes, type: contentType });
      return `${url}${path}`;
    },
    hits: (path) => hits.get(path) ?? 0,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
