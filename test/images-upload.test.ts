import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codes, createTestAccount, gql, startTestApp, type TestAccount, type TestApp } from './helpers/app.ts';
import { transitionInput } from './helpers/fixtures.ts';
import { makeImage } from './helpers/images.ts';
import { freePort } from './helpers/process.ts';
import { CreateTransitions, GetImage, GetNode } from './helpers/operations.ts';
import { uploadImage } from './helpers/uploads.ts';

const MAX_BYTES = 1024 * 1024;
let app: TestApp;
let account: TestAccount;
let mediaDir: string;

beforeAll(async () => {
  mediaDir = mkdtempSync(join(tmpdir(), 'segue-images-'));
  // A known port: Image.url is absolute (PUBLIC_URL, here the API itself).
  const port = await freePort();
  app = await startTestApp({ MEDIA_DIR: mediaDir, IMAGE_MAX_BYTES: String(MAX_BYTES), PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}` });
  account = await createTestAccount(app.segue);
});
afterAll(async () => {
  await app?.close();
  rmSync(mediaDir, { recursive: true, force: true });
});

const download = async (url: string) => {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  return { type: response.headers.get('content-type'), bytes: Buffer.from(await response.arrayBuffer()) };
};

/** Stored files of an account (the local driver keeps them under private/images/<account>/). */
const storedFiles = (accountId: string) => {
  try {
    return readdirSync(join(mediaDir, 'private', 'images', accountId));
  } catch {
    return [];
  }
};

describe('uploadImage (GraphQL multipart request)', () => {
  it('stores a PNG that a browser FormData sends, and shows its size, type and a signed URL only the holder can read', async () => {
    const png = await makeImage({ width: 800, height: 450, format: 'png' });
    const { data, errors } = await uploadImage(app.graphqlUrl, account.apiKey, png);
    expect(errors).toBeUndefined();
    const image = data!.uploadImage;
    expect(image).toMatchObject({ width: 800, height: 450, contentType: 'image/png' });
    expect(image.bytes).toBeGreaterThan(0);

    const file = await download(image.url);
    expect(file.type).toBe('image/png');
    expect(file.bytes.length).toBe(image.bytes);
    // Without the signature, or with a forged one, the file is not served.
    const bare = image.url.split('?')[0]!;
    expect((await fetch(bare)).status).toBe(403);
    expect((await fetch(`${bare}?expires=9999999999&signature=forged`)).status).toBe(403);

    const again = await gql(app.graphqlUrl, account.apiKey, GetImage, { id: image.id });
    expect(again.data?.image).toEqual(image);
  });

  it.each([
    ['IMAGE_FORMAT', 'a GIF', () => makeImage({ width: 400, height: 400, format: 'gif' }), 'image/gif'],
    ['IMAGE_TOO_SMALL', 'a 200×200 PNG', () => makeImage({ width: 200, height: 200 }), 'image/png'],
    ['IMAGE_ASPECT_RATIO', 'a 1000×300 PNG', () => makeImage({ width: 1000, height: 300 }), 'image/png'],
    ['IMAGE_UNREADABLE', 'bytes that are no image', async () => Buffer.from('not an image at all, only text'.repeat(40)), 'image/png'],
    ['IMAGE_TOO_LARGE', 'a PNG over IMAGE_MAX_BYTES', () => makeImage({ width: 700, height: 560, noise: true }), 'image/png'],
  ])('refuses %s (%s) with BAD_USER_INPUT and stores nothing', async (reason, _what, make, type) => {
    const owner = await createTestAccount(app.segue);
    const bytes = await make();
    const response = await uploadImage(app.graphqlUrl, owner.apiKey, bytes, { type });
    expect(codes(response)).toEqual(['BAD_USER_INPUT']);
    expect(response.errors![0]!.extensions).toMatchObject({ reason });
    expect(await app.segue.db.image.count({ where: { accountId: owner.id } })).toBe(0);
    expect(storedFiles(owner.id)).toEqual([]);
  });

  it('refuses an upload far over the limit before reading it (413, IMAGE_TOO_LARGE)', async () => {
    const response = await uploadImage(app.graphqlUrl, account.apiKey, Buffer.alloc(MAX_BYTES * 2, 1));
    expect(response.status).toBe(413);
    expect(response.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'IMAGE_TOO_LARGE' });
  });

  it('stores a WebP as a format Kling takes (JPEG)', async () => {
    const webp = await makeImage({ width: 640, height: 480, format: 'webp' });
    const { data, errors } = await uploadImage(app.graphqlUrl, account.apiKey, webp, { type: 'image/webp', name: 'x.webp' });
    expect(errors).toBeUndefined();
    expect(data!.uploadImage.contentType).toBe('image/jpeg');
    const file = await download(data!.uploadImage.url);
    expect((await sharp(file.bytes).metadata()).format).toBe('jpeg');
  });

  it('stores a JPEG without its GPS and camera EXIF, turned as its orientation says', async () => {
    const jpeg = await makeImage({
      width: 600,
      height: 400,
      format: 'jpeg',
      orientation: 6,
      exif: { IFD0: { Make: 'SpyCam', Model: 'X1' }, IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '48/1 51/1 24/1' } },
    });
    const before = await sharp(jpeg).metadata();
    expect(before.exif?.includes(Buffer.from('SpyCam'))).toBe(true);

    const { data, errors } = await uploadImage(app.graphqlUrl, account.apiKey, jpeg, { type: 'image/jpeg', name: 'photo.jpg' });
    expect(errors).toBeUndefined();
    expect(data!.uploadImage).toMatchObject({ width: 400, height: 600, contentType: 'image/jpeg' });
    const stored = await download(data!.uploadImage.url);
    const after = await sharp(stored.bytes).metadata();
    expect(after.exif).toBeUndefined();
    expect(after.orientation ?? 1).toBe(1);
    expect(stored.bytes.includes(Buffer.from('SpyCam'))).toBe(false);
    expect([after.width, after.height]).toEqual([400, 600]);
  });

  it('keeps an image to its account: another account can neither read it nor make a transition from it', async () => {
    const { data } = await uploadImage(app.graphqlUrl, account.apiKey, await makeImage({}));
    const id = data!.uploadImage.id;
    const other = await createTestAccount(app.segue);

    expect(codes(await gql(app.graphqlUrl, other.apiKey, GetImage, { id }))).toEqual(['NOT_FOUND']);
    expect((await gql(app.graphqlUrl, other.apiKey, GetNode, { id })).data?.node).toBeNull();
    const { frontImageUrl: _f, ...rest } = transitionInput();
    const stolen = await gql(app.graphqlUrl, other.apiKey, CreateTransitions, { input: { transitions: [{ ...rest, frontImageId: id }] } });
    expect(codes(stolen)).toEqual(['NOT_FOUND']);
    expect(stolen.errors![0]!.extensions?.fields).toEqual(['transitions.0.frontImageId']);
    expect(await app.segue.db.transition.count({ where: { accountId: other.id } })).toBe(0);

    // The owner can: the transition shows the upload and a readable URL for it.
    const made = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: [{ ...rest, frontImageId: id }] } });
    expect(made.errors).toBeUndefined();
    const row = await app.segue.db.transition.findFirstOrThrow({ where: { accountId: account.id } });
    expect(row).toMatchObject({ frontImageId: expect.any(String), frontImageUrl: null });
  });

  it('needs exactly one of URL or id per side, naming the field otherwise', async () => {
    const { data } = await uploadImage(app.graphqlUrl, account.apiKey, await makeImage({}));
    const both = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: [transitionInput({ frontImageId: data!.uploadImage.id })] },
    });
    expect(codes(both)).toEqual(['BAD_USER_INPUT']);
    expect(both.errors![0]!.extensions?.fields).toEqual(['transitions.0.frontImageId']);
    const { tailImageUrl: _t, ...noTail } = transitionInput();
    const neither = await gql(app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: [noTail] } });
    expect(codes(neither)).toEqual(['BAD_USER_INPUT']);
    expect(neither.errors![0]!.extensions?.fields).toEqual(['transitions.0.tailImageUrl']);
  });
});
