import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UPLOAD_SWEEP_GRACE_MS, sweepExpiredUploads } from '../src/domain/expired-uploads.ts';
import { uploadFolder } from '../src/domain/images.ts';
import { decodeId } from '../src/graphql/ids.ts';
import { Reconciler } from '../src/queue/reconciler.ts';
import { codes, createTestAccount, gql, startTestApp, type TestAccount, type TestApp } from './helpers/app.ts';
import { makeImage } from './helpers/images.ts';
import { CompleteImageUpload, CreateImageUpload } from './helpers/operations.ts';
import { freePort } from './helpers/process.ts';

// s3rver ships no type declarations; this is the slice of it the test uses.
type S3rverServer = { run(): Promise<AddressInfo>; close(): Promise<void> };
const S3rver = createRequire(import.meta.url)('s3rver') as new (options: Record<string, unknown>) => S3rverServer;

const dir = mkdtempSync(join(tmpdir(), 'segue-direct-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Setup = { env(): Promise<Record<string, string>>; close(): Promise<void> };

const local: Setup = {
  env: async () => ({ MEDIA_DIR: join(dir, 'local') }),
  close: async () => {},
};

let s3rver: S3rverServer | undefined;
const s3: Setup = {
  async env() {
    s3rver = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: join(dir, 's3'), configureBuckets: [{ name: 'segue-images' }] });
    const { port } = await s3rver.run();
    return {
      STORAGE_DRIVER: 's3',
      S3_BUCKET: 'segue-images',
      S3_ENDPOINT: `http://127.0.0.1:${port}`,
      S3_FORCE_PATH_STYLE: 'true',
      S3_ACCESS_KEY_ID: 'S3RVER',
      S3_SECRET_ACCESS_KEY: 'S3RVER',
    };
  },
  close: async () => {
    await s3rver?.close();
  },
};

describe.each([
  ['local storage', local],
  ['S3 (s3rver)', s3],
])('direct uploads on %s', (_name, setup) => {
  let app: TestApp;
  let account: TestAccount;

  beforeAll(async () => {
    const port = await freePort();
    app = await startTestApp({ ...(await setup.env()), PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}` });
    account = await createTestAccount(app.segue);
  });
  afterAll(async () => {
    await app?.close();
    await setup.close();
  });

  const offer = (contentType: string, bytes: number) =>
    gql(app.graphqlUrl, account.apiKey, CreateImageUpload, { input: { contentType, bytes } });

  const put = async (upload: { uploadUrl: string; headers: Array<{ name: string; value: string }> }, body: Buffer, headers: Record<string, string> = {}) =>
    fetch(upload.uploadUrl, {
      method: 'PUT',
      headers: { ...Object.fromEntries(upload.headers.map((h) => [h.name, h.value])), ...headers },
      body: new Uint8Array(body),
    });

  const complete = (id: string) => gql(app.graphqlUrl, account.apiKey, CompleteImageUpload, { id });

  /** An upload offered to `owner` for a PNG of `body`'s size, and `body` PUT (none when null). */
  const offeredTo = async (owner: TestAccount, body: Buffer | null, size = body?.length ?? 0) => {
    const upload = (await gql(app.graphqlUrl, owner.apiKey, CreateImageUpload, { input: { contentType: 'image/png', bytes: size } })).data!.createImageUpload;
    if (body) expect((await put(upload, body)).ok).toBe(true);
    return { upload, id: decodeId(upload.imageId).id };
  };

  /** An upload PUT and pending, whose check another call holds (its lease stands). */
  const heldUpload = async () => {
    const png = await makeImage({ width: 900, height: 600 });
    const upload = (await offer('image/png', png.length)).data!.createImageUpload;
    expect((await put(upload, png)).ok).toBe(true);
    const id = decodeId(upload.imageId).id;
    await app.segue.db.image.update({ where: { id }, data: { leaseUntil: new Date(Date.now() + 60_000) } });
    return { png, upload, id };
  };

  it('createImageUpload, then a PUT, then completeImageUpload stores the checked image', async () => {
    const png = await makeImage({ width: 900, height: 600 });
    const offered = await offer('image/png', png.length);
    expect(offered.errors).toBeUndefined();
    const upload = offered.data!.createImageUpload;
    expect(new Date(upload.expiresAt).getTime()).toBeGreaterThan(Date.now());
    expect(upload.headers).toContainEqual({ name: 'content-type', value: 'image/png' });
    expect((await put(upload, png)).ok).toBe(true);

    const completed = await complete(upload.imageId);
    expect(completed.errors).toBeUndefined();
    const image = completed.data!.completeImageUpload;
    expect(image).toMatchObject({ id: upload.imageId, width: 900, height: 600, contentType: 'image/png' });
    const stored = await fetch(image.url);
    expect(stored.status).toBe(200);
    expect((await sharp(Buffer.from(await stored.arrayBuffer())).metadata()).width).toBe(900);
    // Completing again returns the same image.
    expect((await complete(upload.imageId)).data?.completeImageUpload.id).toBe(upload.imageId);
  });

  it('completes once when called several times at once: every call gets the one stored image', async () => {
    const png = await makeImage({ width: 1200, height: 800 });
    const upload = (await offer('image/png', png.length)).data!.createImageUpload;
    expect((await put(upload, png)).ok).toBe(true);
    // Counts the checks: one work directory each.
    const media = app.segue.media;
    const workdir = media.workdir.bind(media);
    let checks = 0;
    media.workdir = (name) => ((checks += name === 'complete' ? 1 : 0), workdir(name));
    const calls = await Promise.all(Array.from({ length: 8 }, () => complete(upload.imageId))).finally(() => (media.workdir = workdir));
    expect(checks).toBe(1);
    for (const call of calls) {
      expect(call.errors).toBeUndefined();
      expect(call.data!.completeImageUpload).toMatchObject({ id: upload.imageId, width: 1200, height: 800 });
    }
    const row = await app.segue.db.image.findUniqueOrThrow({ where: { id: decodeId(upload.imageId).id } });
    expect(row).toMatchObject({ status: 'READY', leaseUntil: null });
    expect(new Set(calls.map((c) => c.data!.completeImageUpload.bytes))).toEqual(new Set([row.bytes]));
  });

  it('waits while another call holds the upload, then takes it over when that call lets go', async () => {
    // Another call is checking it…
    const { png, upload, id } = await heldUpload();
    let settled = false;
    const call = complete(upload.imageId).finally(() => (settled = true));
    await sleep(700);
    expect(settled).toBe(false);
    expect(await app.segue.db.image.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: 'PENDING' });
    // The file under check is not replaced (the local driver's upload URL; S3 takes any PUT).
    if (setup === local) {
      const refused = await put(upload, png);
      expect(refused.status).toBe(409);
      expect(refused.headers.get('access-control-allow-origin')).toBe('*');
    }
    // …and dies: its lease is let go (or runs out), and the waiting call checks the upload.
    await app.segue.db.image.update({ where: { id }, data: { leaseUntil: new Date(Date.now() - 1) } });
    const completed = await call;
    expect(completed.errors).toBeUndefined();
    expect(completed.data!.completeImageUpload).toMatchObject({ id: upload.imageId, width: 900, height: 600 });
  });

  it('refuses at completion a PUT whose size differs from the declared one, and keeps no file', async () => {
    const png = await makeImage({ width: 900, height: 600 });
    const upload = (await offer('image/png', png.length + 100)).data!.createImageUpload;
    expect((await put(upload, png)).ok).toBe(true);
    const completed = await complete(upload.imageId);
    expect(codes(completed)).toEqual(['BAD_USER_INPUT']);
    expect(completed.errors![0]!.extensions).toMatchObject({ reason: 'UPLOAD_MISMATCH' });
    expect(completed.errors![0]!.message).toMatch(/not the \d+ declared/);
    expect(await app.segue.db.image.count({ where: { accountId: account.id, status: 'PENDING' } })).toBe(0);
    const id = decodeId(upload.imageId).id;
    expect(await app.segue.db.image.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: 'FAILED', key: null, errorCode: 'UPLOAD_MISMATCH' });
    expect(await (await app.segue.media.storage()).head(`${uploadFolder(account.id)}${id}`)).toBeNull();
    // Asked again (a client retrying after a timeout): the same verdict, not NOT_FOUND; and the
    // upload URL takes nothing more.
    const again = await complete(upload.imageId);
    expect(again.errors![0]).toMatchObject({ message: completed.errors![0]!.message, extensions: { code: 'BAD_USER_INPUT', reason: 'UPLOAD_MISMATCH' } });
    if (setup === local) expect((await put(upload, png)).status).toBe(404);
  });

  it('a call waiting for another answers its refusal', async () => {
    const { upload, id } = await heldUpload();
    let settled = false;
    const call = complete(upload.imageId).finally(() => (settled = true));
    await sleep(300);
    expect(settled).toBe(false);
    // The call holding the lease refuses the upload, as checkUpload records it.
    await app.segue.db.image.update({
      where: { id },
      data: { status: 'FAILED', uploadKey: null, leaseUntil: null, errorCode: 'IMAGE_TOO_SMALL', errorMessage: 'The image is 200×200 px; each side must be at least 300 px.' },
    });
    const answered = await call;
    expect(answered.errors![0]).toMatchObject({ message: 'The image is 200×200 px; each side must be at least 300 px.', extensions: { code: 'BAD_USER_INPUT', reason: 'IMAGE_TOO_SMALL' } });
  });

  it('refuses at completion a PUT whose type differs from the declared one (JPEG bytes declared PNG)', async () => {
    const jpeg = await makeImage({ width: 900, height: 600, format: 'jpeg' });
    const upload = (await offer('image/png', jpeg.length)).data!.createImageUpload;
    expect((await put(upload, jpeg)).ok).toBe(true);
    const completed = await complete(upload.imageId);
    expect(codes(completed)).toEqual(['BAD_USER_INPUT']);
    expect(completed.errors![0]!.extensions).toMatchObject({ reason: 'UPLOAD_MISMATCH' });
    expect(completed.errors![0]!.message).toMatch(/JPEG, not the image\/png declared/);
  });

  it('checks the image rules at completion (a 200×200 PNG is IMAGE_TOO_SMALL)', async () => {
    const small = await makeImage({ width: 200, height: 200 });
    const upload = (await offer('image/png', small.length)).data!.createImageUpload;
    expect((await put(upload, small)).ok).toBe(true);
    const completed = await complete(upload.imageId);
    expect(completed.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'IMAGE_TOO_SMALL' });
    // The verdict is kept: asked again, the same refusal.
    expect((await complete(upload.imageId)).errors![0]).toMatchObject({ message: completed.errors![0]!.message, extensions: { reason: 'IMAGE_TOO_SMALL' } });
  });

  it('refuses to offer an upload of a type or size the rules exclude', async () => {
    expect((await offer('image/gif', 1000)).errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'IMAGE_FORMAT' });
    expect((await offer('image/png', 50 * 1024 * 1024)).errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'IMAGE_TOO_LARGE' });
  });

  it('completes only the caller’s own upload: another account gets NOT_FOUND', async () => {
    const png = await makeImage({});
    const upload = (await offer('image/png', png.length)).data!.createImageUpload;
    await put(upload, png);
    const other = await createTestAccount(app.segue);
    expect(codes(await gql(app.graphqlUrl, other.apiKey, CompleteImageUpload, { id: upload.imageId }))).toEqual(['NOT_FOUND']);
  });

  it('an hour after an upload URL expired, deletes the upload if never completed, and removes any file a late PUT left', async () => {
    const owner = await createTestAccount(app.segue);
    const png = await makeImage({ width: 900, height: 600 });
    const small = await makeImage({ width: 200, height: 200 });
    const storage = await app.segue.media.storage();
    const fileOf = (id: string) => storage.head(`${uploadFolder(owner.id)}${id}`);
    const completeIt = (imageId: string) => gql(app.graphqlUrl, owner.apiKey, CompleteImageUpload, { id: imageId });
    const offered = (body: Buffer | null = png) => offeredTo(owner, body, (body ?? png).length);
    const abandoned = await offered();
    const neverPut = await offered(null);
    // Expired, but a PUT begun in time may have just ended: its client can still complete it.
    const late = await offered();
    // Abandoned, but a completeImageUpload call holds it now; and one whose holder died.
    const held = await offered();
    const heldOnce = await offered();
    const completed = await offered();
    expect((await completeIt(completed.upload.imageId)).errors).toBeUndefined();
    const refused = await offered(small);
    expect((await completeIt(refused.upload.imageId)).errors![0]!.extensions).toMatchObject({ reason: 'IMAGE_TOO_SMALL' });
    // A presigned S3 URL still takes a PUT after its upload was completed or refused (the local
    // driver's URL answers 404): a file nothing would ever remove.
    if (setup === s3) {
      for (const { upload, id } of [completed, refused]) {
        expect((await put(upload, png)).ok).toBe(true);
        expect(await fileOf(id)).not.toBeNull();
      }
    }
    const ago = (ms: number) => new Date(Date.now() - ms);
    await app.segue.db.image.updateMany({
      where: { id: { in: [abandoned.id, neverPut.id, held.id, heldOnce.id, completed.id, refused.id] } },
      data: { uploadExpiresAt: ago(UPLOAD_SWEEP_GRACE_MS + 60_000) },
    });
    await app.segue.db.image.update({ where: { id: late.id }, data: { uploadExpiresAt: ago(UPLOAD_SWEEP_GRACE_MS - 60_000) } });
    await app.segue.db.image.update({ where: { id: held.id }, data: { leaseUntil: new Date(Date.now() + 60_000) } });
    await app.segue.db.image.update({ where: { id: heldOnce.id }, data: { leaseUntil: ago(1_000) } });
    await new Reconciler(app.segue).run();

    const left = await app.segue.db.image.findMany({ where: { accountId: owner.id }, select: { id: true, status: true, uploadKey: true, uploadExpiresAt: true } });
    expect(new Map(left.map((image) => [image.id, image.status]))).toEqual(
      new Map([
        [late.id, 'PENDING'],
        [held.id, 'PENDING'],
        [completed.id, 'READY'],
        [refused.id, 'FAILED'],
      ]),
    );
    for (const row of left.filter((image) => image.id === completed.id || image.id === refused.id)) {
      expect(row).toMatchObject({ uploadKey: null, uploadExpiresAt: null });
    }
    for (const { id } of [abandoned, heldOnce, completed, refused]) expect(await fileOf(id)).toBeNull();
    expect(await fileOf(late.id)).not.toBeNull();
    expect(await fileOf(held.id)).not.toBeNull();
    // A swept upload is gone; the late one still completes; the refused one keeps its verdict.
    expect(codes(await completeIt(abandoned.upload.imageId))).toEqual(['NOT_FOUND']);
    expect((await completeIt(late.upload.imageId)).data?.completeImageUpload).toMatchObject({ id: late.upload.imageId, width: 900, height: 600 });
    expect((await completeIt(refused.upload.imageId)).errors![0]!.extensions).toMatchObject({ reason: 'IMAGE_TOO_SMALL' });
    expect((await completeIt(completed.upload.imageId)).data?.completeImageUpload.id).toBe(completed.upload.imageId);
  });

  it('tries a file it could not remove again later, behind the others, and holds no row meanwhile', async () => {
    const owner = await createTestAccount(app.segue);
    const png = await makeImage({ width: 900, height: 600 });
    const offered = () => offeredTo(owner, png);
    const expire = (ids: string[]) =>
      app.segue.db.image.updateMany({ where: { id: { in: ids } }, data: { uploadExpiresAt: new Date(Date.now() - UPLOAD_SWEEP_GRACE_MS - 60_000) } });
    // One never completed and one completed, whose files storage refuses to remove.
    const stuck = await offered();
    const ready = await offered();
    expect((await gql(app.graphqlUrl, owner.apiKey, CompleteImageUpload, { id: ready.upload.imageId })).errors).toBeUndefined();
    const other = await offered();
    await expire([stuck.id, ready.id, other.id]);
    const storage = await app.segue.media.storage();
    const remove = storage.remove.bind(storage);
    const refusedKeys: string[] = [];
    storage.remove = async (key) => {
      if (key.endsWith(stuck.id) || key.endsWith(ready.id)) {
        refusedKeys.push(key);
        throw new Error('storage refused');
      }
      return remove(key);
    };
    try {
      await sweepExpiredUploads(app.segue);
      // The next pass takes what expired since, not the same two again.
      const later = await offered();
      await expire([later.id]);
      await sweepExpiredUploads(app.segue);
      expect(await app.segue.db.image.findUnique({ where: { id: later.id } })).toBeNull();
    } finally {
      storage.remove = remove;
    }
    expect(refusedKeys).toHaveLength(2);
    expect(await app.segue.db.image.findUnique({ where: { id: other.id } })).toBeNull();
    // Neither row is held: a completion can take the pending one, and the READY image's upload
    // to fal's storage (the same lease column) is not stood in the way of.
    const kept = await app.segue.db.image.findMany({ where: { id: { in: [stuck.id, ready.id] } } });
    expect(kept.map((row) => [row.status, row.leaseUntil]).sort()).toEqual([
      ['PENDING', null],
      ['READY', null],
    ]);
    for (const row of kept) expect(row.uploadKey).not.toBeNull();
    // Once their turn came again, a pass removes them.
    await expire([stuck.id, ready.id]);
    await sweepExpiredUploads(app.segue);
    expect(await app.segue.db.image.findUnique({ where: { id: stuck.id } })).toBeNull();
    expect(await app.segue.db.image.findUniqueOrThrow({ where: { id: ready.id } })).toMatchObject({ status: 'READY', uploadKey: null, uploadExpiresAt: null });
    expect(await storage.head(`${uploadFolder(owner.id)}${stuck.id}`)).toBeNull();
  });
});

describe('local direct-upload URLs', () => {
  it('refuse a forged signature and a Content-Type other than the declared one', async () => {
    const port = await freePort();
    const app = await startTestApp({ MEDIA_DIR: join(dir, 'signed'), PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}` });
    try {
      const account = await createTestAccount(app.segue);
      const png = await makeImage({});
      const upload = (await gql(app.graphqlUrl, account.apiKey, CreateImageUpload, { input: { contentType: 'image/png', bytes: png.length } })).data!
        .createImageUpload;
      const forged = upload.uploadUrl.replace(/signature=[^&]+/, 'signature=forged');
      expect((await fetch(forged, { method: 'PUT', headers: { 'content-type': 'image/png' }, body: new Uint8Array(png) })).status).toBe(403);
      expect((await fetch(upload.uploadUrl, { method: 'PUT', headers: { 'content-type': 'image/jpeg' }, body: new Uint8Array(png) })).status).toBe(415);
    } finally {
      await app.close();
    }
  });
});
