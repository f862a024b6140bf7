import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMediaStorage } from '../src/media/storage.ts';
import { createLocalStorage } from '../src/media/storage-local.ts';
import { createS3Storage, type S3Storage } from '../src/media/storage-s3.ts';

// s3rver ships no type declarations; this is the slice of it the test uses.
type S3rverServer = { run(): Promise<AddressInfo>; close(): Promise<void> };
const S3rver = createRequire(import.meta.url)('s3rver') as new (options: Record<string, unknown>) => S3rverServer;

let dir: string;
let video: string;
let videoBytes: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'segue-media-storage-'));
  video = path.join(dir, 'source.mp4');
  videoBytes = randomBytes(256 * 1024);
  await writeFile(video, videoBytes);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

// Compared by digest: vitest's deep equality walks a Buffer byte by byte, which takes seconds.
const digest = (bytes: Buffer) => `${bytes.length}:${createHash('sha256').update(bytes).digest('hex')}`;

async function bytesOf(stream: Readable) {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

describe('local storage', () => {
  it('puts files under its root and forms their public URL from the key', async () => {
    const root = path.join(dir, 'local');
    const storage = createLocalStorage({ root, publicBaseUrl: 'http://localhost:4000/media/' });
    const stored = await storage.put('transitions/abc-123/video.mp4', video, 'video/mp4');
    expect(stored).toEqual({
      key: 'transitions/abc-123/video.mp4',
      url: 'http://localhost:4000/media/transitions/abc-123/video.mp4',
      size: videoBytes.length,
    });
    expect(storage.url('a/b.jpg')).toBe('http://localhost:4000/media/a/b.jpg');
    expect(storage.path('transitions/abc-123/video.mp4')).toBe(path.join(root, 'transitions', 'abc-123', 'video.mp4'));
    expect(digest(await readFile(path.join(root, 'transitions/abc-123/video.mp4')))).toBe(digest(videoBytes));
    expect(digest(await bytesOf(await storage.get('transitions/abc-123/video.mp4')))).toBe(digest(videoBytes));
    // Nothing but the file itself is left in the directory.
    expect(await readdir(path.join(root, 'transitions/abc-123'))).toEqual(['video.mp4']);
  });

  it('replaces a file atomically: a reader of the old file keeps reading it whole', async () => {
    const root = path.join(dir, 'atomic');
    const storage = createLocalStorage({ root, publicBaseUrl: 'http://localhost:4000/media' });
    const old = Buffer.alloc(1024 * 1024, 'o');
    const oldFile = path.join(dir, 'old.bin');
    await writeFile(oldFile, old);
    await storage.put('clip.mp4', oldFile, 'video/mp4');

    // A file written in place would change under this open handle; a renamed one does not.
    const handle = await open(storage.path('clip.mp4'), 'r');
    try {
      await storage.put('clip.mp4', video, 'video/mp4');
      const { buffer, bytesRead } = await handle.read(Buffer.alloc(old.length + 10), 0, old.length + 10, 0);
      expect(digest(buffer.subarray(0, bytesRead))).toBe(digest(old));
    } finally {
      await handle.close();
    }
    expect(digest(await readFile(storage.path('clip.mp4')))).toBe(digest(videoBytes));

    // A failed put leaves the stored file as it was and no temporary file behind.
    await expect(storage.put('clip.mp4', path.join(dir, 'missing.mp4'), 'video/mp4')).rejects.toMatchObject({
      name: 'MediaError',
      code: 'STORAGE_FAILED',
    });
    expect(digest(await readFile(storage.path('clip.mp4')))).toBe(digest(videoBytes));
    expect(await readdir(root)).toEqual(['clip.mp4']);
  });

  it('lists and removes stored objects only: the partial files of writes under way are not objects', async () => {
    const root = path.join(dir, 'listing');
    const storage = createLocalStorage({ root, publicBaseUrl: 'http://localhost:4000/media' });
    await storage.put('transitions/a/r1-a1.mp4', video, 'video/mp4');
    await storage.put('transitions/a/r1-poster.jpg', video, 'image/jpeg');
    // A put's copy, and a download's or a render's file, each written beside its target before the rename.
    for (const partial of ['r1-a1.mp4.0a1b2c3d4e5f.tmp', 'r2-a1.mp4.0a1b2c3d4e5f.part', 'r1-poster.jpg.0a1b2c3d4e5f.part']) {
      await writeFile(path.join(root, 'transitions/a', partial), 'partial');
    }
    expect(await storage.list('transitions/a/')).toEqual(['transitions/a/r1-a1.mp4', 'transitions/a/r1-poster.jpg']);
    expect(await storage.removePrefix('transitions/a/')).toBe(2);
    expect(await storage.list('transitions/a/')).toEqual([]);
  });

  it('refuses keys that could leave the root or hide files', async () => {
    const storage = createLocalStorage({ root: path.join(dir, 'keys'), publicBaseUrl: 'http://localhost:4000/media' });
    for (const key of ['../escape.mp4', 'a/../../b.mp4', '/etc/passwd', 'a//b.mp4', '.hidden', 'a\\b.mp4', '', 'a/b/']) {
      await expect(storage.put(key, video, 'video/mp4'), key).rejects.toMatchObject({ code: 'STORAGE_INVALID_KEY' });
    }
    expect(() => storage.url('../x')).toThrow(expect.objectContaining({ code: 'STORAGE_INVALID_KEY' }));
    await expect(storage.get('nothing/here.mp4')).rejects.toMatchObject({ code: 'STORAGE_NOT_FOUND' });
  });
});

describe('S3 storage (s3rver)', () => {
  let server: S3rverServer;
  let endpoint: string;
  let storage: S3Storage;
  const bucket = 'segue-media';
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

  beforeAll(async () => {
    const directory = path.join(dir, 's3rver');
    await mkdir(directory);
    server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory, configureBuckets: [{ name: bucket }] });
    const { port } = await server.run();
    endpoint = `http://127.0.0.1:${port}`;
    storage = createS3Storage({ bucket, endpoint, forcePathStyle: true, region: 'us-east-1', credentials });
  });
  afterAll(async () => {
    await storage?.close();
    await server?.close();
  });

  it('uploads with the content type and serves the same bytes at the object URL', async () => {
    const stored = await storage.put('transitions/abc/video.mp4', video, 'video/mp4');
    expect(stored).toEqual({ key: 'transitions/abc/video.mp4', url: `${endpoint}/${bucket}/transitions/abc/video.mp4`, size: videoBytes.length });

    const response = await fetch(stored.url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('video/mp4');
    expect(digest(Buffer.from(await response.arrayBuffer()))).toBe(digest(videoBytes));

    const object = await storage.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'transitions/abc/video.mp4' }));
    expect(object.ContentType).toBe('video/mp4');
    expect(object.ContentLength).toBe(videoBytes.length);
    expect(digest(await bytesOf(await storage.get('transitions/abc/video.mp4')))).toBe(digest(videoBytes));
  });

  it('stores each type as given (a poster as image/jpeg, subtitles as text/vtt)', async () => {
    const vtt = path.join(dir, 'subs.vtt');
    await writeFile(vtt, 'WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.000\nHi\n');
    const stored = await storage.put('combined/x/subtitles.vtt', vtt, 'text/vtt');
    const response = await fetch(stored.url);
    expect(response.headers.get('content-type')).toBe('text/vtt');
    expect(await response.text()).toContain('WEBVTT');
  });

  it('forms URLs from a public base URL, a key prefix, or the endpoint', async () => {
    const cdn = createS3Storage({ bucket, endpoint, forcePathStyle: true, credentials, publicBaseUrl: 'https://cdn.example.com/', keyPrefix: 'segue/' });
    expect(cdn.url('a/b.mp4')).toBe('https://cdn.example.com/segue/a/b.mp4');
    const stored = await cdn.put('a/b.mp4', video, 'video/mp4');
    expect(stored.url).toBe('https://cdn.example.com/segue/a/b.mp4');
    expect((await fetch(`${endpoint}/${bucket}/segue/a/b.mp4`)).status).toBe(200);
    await cdn.close();

    const virtualHosted = createS3Storage({ bucket, endpoint: 'https://s3.example.com', credentials });
    expect(virtualHosted.url('a.mp4')).toBe('https://segue-media.s3.example.com/a.mp4');
    expect(createS3Storage({ bucket, region: 'eu-west-1' }).url('a.mp4')).toBe('https://segue-media.s3.eu-west-1.amazonaws.com/a.mp4');
    await virtualHosted.close();
  });

  it('reports a missing object, a missing bucket and an unreachable server with codes', async () => {
    await expect(storage.get('nothing/here.mp4')).rejects.toMatchObject({ code: 'STORAGE_NOT_FOUND' });
    const noBucket = createS3Storage({ bucket: 'no-such-bucket', endpoint, forcePathStyle: true, credentials });
    await expect(noBucket.put('a.mp4', video, 'video/mp4')).rejects.toMatchObject({ code: 'STORAGE_FAILED', retryable: false });
    await noBucket.close();
    const down = createS3Storage({ bucket, endpoint: 'http://127.0.0.1:9', forcePathStyle: true, credentials, maxAttempts: 1 });
    await expect(down.put('a.mp4', video, 'video/mp4')).rejects.toMatchObject({ code: 'STORAGE_FAILED', retryable: true });
    await down.close();
  });

  it('is chosen by createMediaStorage, which loads only the driver asked for', async () => {
    const s3 = await createMediaStorage({ driver: 's3', bucket, endpoint, forcePathStyle: true, credentials });
    expect(s3.driver).toBe('s3');
    expect((await s3.put('factory/one.mp4', video, 'video/mp4')).url).toBe(`${endpoint}/${bucket}/factory/one.mp4`);
    await s3.close?.();
    const local = await createMediaStorage({ driver: 'local', root: path.join(dir, 'factory'), publicBaseUrl: 'http://h/media' });
    expect(local.driver).toBe('local');
  });
});
