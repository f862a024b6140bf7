import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkUrlImage, prepareRunImages, type RunImageDeps } from '../src/domain/run-images.ts';
import type { Transition } from '../src/generated/prisma/client.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { createTestAccount, testConfig } from './helpers/app.ts';
import { fixtureImages } from './helpers/fixtures.ts';
import { makeImage } from './helpers/images.ts';
import { until } from './helpers/wait.ts';

/**
 * A check of a URL image holds a lease on its row (a minute), so that one worker checks it while
 * the others wait. When the database fails as the check ends, its verdict and the release of the
 * lease fail too: the worker that wrote the lease takes it back at its next try, rather than
 * have every job using the image wait the minute out.
 */
let segue: Segue;
let deps: RunImageDeps;
beforeAll(() => {
  segue = createSegue(testConfig());
  deps = {
    db: segue.db,
    media: segue.media,
    config: segue.config,
    logger: segue.logger,
    falUploader: () => {
      throw new Error('no fal upload in this test');
    },
  };
});
afterAll(() => segue?.close());

describe('the lease of an image check left behind by a failing database', () => {
  it('is taken back at once by the process that wrote it, and the image checked', { timeout: 30_000 }, async () => {
    const account = await createTestAccount(segue);
    const url = fixtureImages.set(`/lease-${randomBytes(4).toString('hex')}.png`, await makeImage({ width: 640, height: 360, color: '#40a0e0' }));
    const name = `segue_test_fail_${randomBytes(4).toString('hex')}`;
    // PostgreSQL itself refuses every write to this image's row, as a database going away would.
    // Its own connection, whose DDL waits at most 5 s for the table other tests write to.
    const admin = new pg.Client({ connectionString: segue.config.databaseUrl });
    await admin.connect();
    try {
      await admin.query(`SET lock_timeout = '5s'`);
      await admin.query(`CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'writes to this image fail'; END $$`);
      await admin.query(`CREATE TRIGGER ${name} BEFORE UPDATE ON "Image" FOR EACH ROW WHEN (OLD."sourceUrl" = '${url}') EXECUTE FUNCTION ${name}()`);
      await expect(checkUrlImage(deps, account.id, url, 'preview')).rejects.toThrow(/writes to this image fail/);
    } finally {
      await admin.query(`DROP TRIGGER IF EXISTS ${name} ON "Image"`);
      await admin.query(`DROP FUNCTION IF EXISTS ${name}()`);
      await admin.end();
    }
    const left = await segue.db.image.findUniqueOrThrow({ where: { accountId_sourceUrl: { accountId: account.id, sourceUrl: url } } });
    expect(left.status).toBe('CHECKING');
    expect(left.leaseUntil!.getTime()).toBeGreaterThan(Date.now() + 30_000);

    let timer: NodeJS.Timeout | undefined;
    const checked = await Promise.race([
      checkUrlImage(deps, account.id, url, 'preview'),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('still waiting for the lease after 10 s')), 10_000))),
    ]).finally(() => clearTimeout(timer));
    expect(checked).toMatchObject({ status: 'READY', width: 640, height: 360, leaseUntil: null });
  });
});

describe('a check that outlives its lease', () => {
  it('leaves the lease of the worker that took the row over: its verdict serves its own run, the row stays with the other check', { timeout: 30_000 }, async () => {
    const account = await createTestAccount(segue);
    const png = await makeImage({ width: 640, height: 360, color: '#a040e0' });
    // Each fetch of the image is held until the test lets it go: a slow server.
    const held: Array<() => void> = [];
    const server = createServer((_req, res) => {
      held.push(() => {
        if (!res.headersSent) res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length }).end(png);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slow-${randomBytes(4).toString('hex')}.png`;
    try {
      const first = checkUrlImage(deps, account.id, url, 'preview');
      await until(() => held.length === 1, { what: 'the first check fetching' });
      // Its minute runs out while it still fetches (as a worker stalled that long would see)...
      const key = { accountId_sourceUrl: { accountId: account.id, sourceUrl: url } };
      const { id } = await segue.db.image.findUniqueOrThrow({ where: key });
      await segue.db.image.update({ where: { id }, data: { leaseUntil: new Date(Date.now() - 1000) } });
      // ...and another worker takes the row over and checks it again.
      const second = checkUrlImage(deps, account.id, url, 'preview');
      await until(() => held.length === 2, { what: 'the second check fetching' });
      const takenOver = await segue.db.image.findUniqueOrThrow({ where: key });
      expect(takenOver.leaseUntil!.getTime()).toBeGreaterThan(Date.now() + 30_000);

      held[0]!();
      expect(await first).toMatchObject({ status: 'READY', width: 640, height: 360 });
      // The late verdict did not clear the second check's lease.
      expect(await segue.db.image.findUniqueOrThrow({ where: key })).toMatchObject({ status: 'CHECKING', leaseUntil: takenOver.leaseUntil });
      // Nor is it kept for the next runs of this process, which wait for the verdict the row will hold.
      const transition = { accountId: account.id, frontImageUrl: url, tailImageUrl: url, frontImageId: null, tailImageId: null } as unknown as Transition;
      let nextDone = false;
      const next = prepareRunImages(deps, transition, 'preview').finally(() => (nextDone = true));
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(nextDone).toBe(false);

      held[1]!();
      expect(await next).toMatchObject({ ok: true });
      expect(await second).toMatchObject({ status: 'READY', width: 640, height: 360, leaseUntil: null });
      expect(await segue.db.image.findUniqueOrThrow({ where: key })).toMatchObject({ status: 'READY', leaseUntil: null });
    } finally {
      for (const send of held) send();
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('an image a check that ran again found wanting, as a run was about to upload it to fal', () => {
  it('fails the run with that verdict at once (final), rather than as a retryable failure of our own', { timeout: 30_000 }, async () => {
    const account = await createTestAccount(segue);
    const url = fixtureImages.set(`/wanting-${randomBytes(4).toString('hex')}.png`, await makeImage({ width: 640, height: 360, color: '#e0a040' }));
    // Images go to fal's storage, and fal's storage is down: the check stores the image and
    // leaves the fal upload to the run.
    const uploads: string[] = [];
    const falDeps: RunImageDeps = {
      ...deps,
      config: { ...segue.config, images: { ...segue.config.images, falUpload: 'always' } },
      falUploader: () => ({
        upload: async (file: string) => {
          uploads.push(file);
          throw new Error('fal storage is down');
        },
      }),
    };
    const checked = await checkUrlImage(falDeps, account.id, url, 'fal');
    expect(checked).toMatchObject({ status: 'READY', falUrl: null });
    expect(checked.key).not.toBeNull();
    const uploadsAtCheck = uploads.length;
    // Another worker checks the URL again (its verdict's time up) and finds it wanting; this
    // process still holds the READY verdict. The row still names a fal upload of the image it
    // had been (written between two of this run's reads): not to be used.
    await segue.db.image.update({
      where: { id: checked.id },
      data: {
        status: 'FAILED',
        errorCode: 'IMAGE_INVALID',
        errorMessage: 'IMAGE_TOO_SMALL: now 120x80',
        key: null,
        checkedAt: new Date(),
        falUrl: 'https://v3.fal.media/files/old-image.png',
        falUploadedAt: new Date(),
      },
    });
    const transition = { accountId: account.id, frontImageUrl: url, tailImageUrl: url, frontImageId: null, tailImageId: null } as unknown as Transition;
    await expect(prepareRunImages(falDeps, transition, 'fal')).resolves.toEqual({ ok: false, code: 'IMAGE_INVALID', message: 'front image: IMAGE_TOO_SMALL: now 120x80' });
    expect(uploads).toHaveLength(uploadsAtCheck);
    // The verdict is this process's now: the next run fails with it at once, without reading the row.
    await segue.db.image.update({ where: { id: checked.id }, data: { errorMessage: 'changed since' } });
    await expect(prepareRunImages(falDeps, transition, 'fal')).resolves.toEqual({ ok: false, code: 'IMAGE_INVALID', message: 'front image: IMAGE_TOO_SMALL: now 120x80' });
  });
});
