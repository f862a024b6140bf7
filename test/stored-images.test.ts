import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoredImages } from '../src/domain/stored-images.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { createTestAccount, testConfig } from './helpers/app.ts';
import { statementsDuring } from './helpers/statements.ts';

/** Uploaded images as stored, kept per process and read together (src/domain/stored-images.ts), against PostgreSQL. */
let segue: Segue;
beforeAll(() => {
  segue = createSegue(testConfig());
});
afterAll(() => segue?.close());

async function images(keys: Array<string | null>) {
  const account = await createTestAccount(segue);
  return Promise.all(
    keys.map((key) => segue.db.image.create({ data: { accountId: account.id, status: key ? 'READY' : 'PENDING', key } }).then((row) => row.id)),
  );
}

const reads = (sent: string[]) => sent.filter((sql) => sql.includes('FROM "Image"'));

describe('stored images', () => {
  it('asked in one turn: one read; kept after; the least recently used go past the capacity', async () => {
    const ids = await images(['k/a.png', 'k/b.png', 'k/c.png']);
    const keys = new StoredImages(segue, 2);
    const [a, b, c] = ids as [string, string, string];
    let got!: string[];
    const first = await statementsDuring(async () => (got = await Promise.all([a, b, a].map((id) => keys.of(id).then((image) => image.key)))));
    expect(got).toEqual(['k/a.png', 'k/b.png', 'k/a.png']);
    expect(reads(first)).toHaveLength(1);
    const readsFor = async (...wanted: string[]) => reads(await statementsDuring(() => Promise.all(wanted.map((id) => keys.of(id))))).length;
    expect(await readsFor(a)).toBe(0);
    // a was used last: c takes b's place.
    expect(await readsFor(c)).toBe(1);
    expect(await readsFor(a, c)).toBe(0);
    expect(await readsFor(b)).toBe(1);
  });

  it('an image with no stored file fails its callers only; a failed read fails its turn and the next turn reads again', async () => {
    const [stored, pending] = await images(['k/d.png', null]);
    const keys = new StoredImages(segue);
    const [a, b] = await Promise.allSettled([keys.of(stored!), keys.of(pending!)]);
    expect(a).toMatchObject({ status: 'fulfilled', value: { id: stored, key: 'k/d.png', status: 'READY' } });
    expect(b).toMatchObject({ status: 'rejected', reason: { message: expect.stringMatching(/not a stored upload/) } });
    // A null key is not kept: once stored, it is found.
    await segue.db.image.update({ where: { id: pending! }, data: { status: 'READY', key: 'k/e.png' } });
    expect((await keys.of(pending!)).key).toBe('k/e.png');

    // Not an id PostgreSQL takes: the statement fails, and with it every caller of its turn.
    const [other] = await images(['k/g.png']);
    const failed = await Promise.allSettled([keys.of('not-a-uuid'), keys.of(other!)]);
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    // Nothing of it is left waiting: the next turn reads the same id again, and finds it.
    let again!: string;
    const sent = await statementsDuring(async () => (again = (await keys.of(other!)).key));
    expect(again).toBe('k/g.png');
    expect(reads(sent)).toHaveLength(1);
  });

  it('only stored uploads are kept: a pending upload with a key and a URL image are refused, every time', async () => {
    const account = await createTestAccount(segue);
    const pending = await segue.db.image.create({ data: { accountId: account.id, status: 'PENDING', key: 'k/h.png' } });
    // A URL image is checked again in place: its file and facts change, so it is never kept.
    const checked = await segue.db.image.create({ data: { accountId: account.id, status: 'READY', key: 'k/i.png', sourceUrl: 'https://example.com/i.png' } });
    const keys = new StoredImages(segue);
    for (let round = 0; round < 2; round++) {
      const answers = await Promise.allSettled([keys.of(pending.id), keys.of(checked.id)]);
      expect(answers.map((a) => a.status)).toEqual(['rejected', 'rejected']);
    }
  });

  it('asked again while its read is under way: waits for that read', async () => {
    const [id] = await images(['k/f.png']);
    const keys = new StoredImages(segue);
    let got!: string[];
    const sent = await statementsDuring(async () => {
      const first = keys.of(id!);
      // The read has gone out (it starts on the turn's check phase), its answer not yet in.
      await new Promise((r) => setImmediate(r));
      got = (await Promise.all([first, keys.of(id!)])).map((image) => image.key);
    });
    expect(got).toEqual(['k/f.png', 'k/f.png']);
    expect(reads(sent)).toHaveLength(1);
  });
});
