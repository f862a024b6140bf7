import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkUrlImage, type RunImageDeps } from '../src/domain/run-images.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { createTestAccount, testConfig } from './helpers/app.ts';
import { fixtureImages } from './helpers/fixtures.ts';
import { makeImage } from './helpers/images.ts';

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
    await segue.sql.query(`CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'writes to this image fail'; END $$`, []);
    await segue.sql.query(
      `CREATE TRIGGER ${name} BEFORE UPDATE ON "Image" FOR EACH ROW WHEN (OLD."sourceUrl" = '${url}') EXECUTE FUNCTION ${name}()`,
      [],
    );
    try {
      await expect(checkUrlImage(deps, account.id, url, 'preview')).rejects.toThrow(/writes to this image fail/);
    } finally {
      await segue.sql.query(`DROP TRIGGER ${name} ON "Image"`, []);
      await segue.sql.query(`DROP FUNCTION ${name}()`, []);
    }
    const left = await segue.db.image.findUniqueOrThrow({ where: { accountId_sourceUrl: { accountId: account.id, sourceUrl: url } } });
    expect(left.status).toBe('CHECKING');
    expect(left.leaseUntil!.getTime()).toBeGreaterThan(Date.now() + 30_000);

    const started = Date.now();
    const checked = await Promise.race([
      checkUrlImage(deps, account.id, url, 'preview'),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('still waiting for the lease after 10 s')), 10_000)),
    ]);
    expect(checked).toMatchObject({ status: 'READY', width: 640, height: 360, leaseUntil: null });
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
