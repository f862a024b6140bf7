import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessTokens } from '../src/auth/access-tokens.ts';
import { createAuthenticator } from '../src/auth/authenticate.ts';
import { SharedLookups } from '../src/auth/shared-lookups.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { createTestAccount, testConfig } from './helpers/app.ts';
import { statementsDuring } from './helpers/statements.ts';

/**
 * After an API restart thousands of browsers present the same few credentials at once. Each
 * distinct API key (and each key behind browser tokens) is read once while its read is in
 * flight, for every connection that asks meanwhile; nothing is kept after, so a revoked key is
 * refused by the next check.
 */
let segue: Segue;
beforeAll(() => {
  // Two connections, both held while the checks arrive: each check waits for the database, as
  // in a burst, and arrives on a turn of its own (Prisma joins reads asked in one turn itself).
  segue = createSegue(testConfig({ DATABASE_POOL_SIZE: '2' }));
});
afterAll(() => segue?.close());

const keyReads = (sent: string[]) => sent.filter((sql) => /^SELECT .* FROM "public"\."ApiKey"/.test(sql));

/** Runs `checks` one turn apart while the pool's connections are busy, then lets the database go. */
async function whileTheDatabaseIsBusy<T>(checks: Array<() => Promise<T>>): Promise<T[]> {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let held = 0;
  const holding = Array.from({ length: 2 }, () =>
    segue.sql.transaction(async (tx) => {
      await tx.query('SELECT 1', []);
      held++;
      await gate;
    }),
  );
  while (held < 2) await new Promise((r) => setTimeout(r, 5));
  const results: Array<Promise<T>> = [];
  for (const check of checks) {
    results.push(check());
    await new Promise((r) => setTimeout(r, 1));
  }
  release();
  await Promise.all(holding);
  return Promise.all(results);
}

describe('credentials checked at once', () => {
  it('50 connections with one API key while its read waits: one read of the key, every one let in; after a revocation the next is refused', async () => {
    const account = await createTestAccount(segue);
    const authenticator = createAuthenticator({ db: segue.db, tokens: null });
    let results!: Awaited<ReturnType<typeof authenticator.authenticate>>[];
    const sent = await statementsDuring(async () => {
      results = await whileTheDatabaseIsBusy(Array.from({ length: 50 }, () => () => authenticator.authenticate(`Bearer ${account.apiKey}`)));
    });
    expect(keyReads(sent)).toHaveLength(1);
    expect(results.every((r) => r.principal?.kind === 'key' && r.principal.accountId === account.id)).toBe(true);

    // Two keys at once: one read each.
    const other = await createTestAccount(segue);
    const both = await statementsDuring(() => whileTheDatabaseIsBusy([account, other, account, other].map((a) => () => authenticator.authenticate(`Bearer ${a.apiKey}`))));
    expect(keyReads(both)).toHaveLength(2);

    await segue.db.apiKey.updateMany({ where: { accountId: account.id }, data: { revokedAt: new Date() } });
    const after = await authenticator.authenticate(`Bearer ${account.apiKey}`);
    expect(after.principal).toBeNull();
    expect(after.failure).toMatch(/revoked/i);
  });

  it('50 browser tokens of one key while its read waits: one read of the key; revoked, the next token check is refused', async () => {
    const account = await createTestAccount(segue);
    const key = await segue.db.apiKey.findFirstOrThrow({ where: { accountId: account.id } });
    const tokens = accessTokens({ db: segue.db, secret: 'x'.repeat(32) });
    const expiresAt = new Date(Date.now() + 600_000);
    const minted = await Promise.all(
      Array.from({ length: 50 }, (_, i) => tokens.sign({ accountId: account.id, keyId: key.id, scope: { batchId: `00000000-0000-7000-8000-${String(i).padStart(12, '0')}` }, expiresAt })),
    );
    let results!: Awaited<ReturnType<typeof tokens.verify>>[];
    const sent = await statementsDuring(async () => {
      results = await whileTheDatabaseIsBusy(minted.map(({ token }) => () => tokens.verify(token)));
    });
    expect(keyReads(sent)).toHaveLength(1);
    expect(results.every((r) => r.principal?.kind === 'token' && r.principal.keyId === key.id)).toBe(true);

    await segue.db.apiKey.update({ where: { id: key.id }, data: { revokedAt: new Date() } });
    const after = await tokens.verify(minted[0]!.token);
    expect(after.principal).toBeNull();
    expect(after.failure).toMatch(/revoked/);
  });

  it('a lookup that fails fails every caller that shared it, and the next one reads again', async () => {
    const lookups = new SharedLookups<string>();
    let reads = 0;
    const failing = () => {
      reads++;
      return new Promise<string>((_, reject) => setTimeout(() => reject(new Error('the database is away')), 10));
    };
    const shared = await Promise.allSettled([lookups.run('k', failing), lookups.run('k', failing), lookups.run('k', failing)]);
    expect(shared.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(reads).toBe(1);
    expect(lookups.size).toBe(0);
    expect(await lookups.run('k', async () => (reads++, 'read again'))).toBe('read again');
    expect(reads).toBe(2);
    expect(lookups.size).toBe(0);
  });
});
