import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Db } from '../db.ts';
import type { ApiKey } from '../generated/prisma/client.ts';
import { notFound } from './errors.ts';
import { parseInput } from './transition-input.ts';

/** Every API key secret starts with it, so a secret is recognisable in a leak scanner or a log. */
export const KEY_PREFIX = 'sg_';
/** `sg_` and 8 characters of the secret: enough to tell keys apart, far too few to guess the rest. */
const SHOWN_PREFIX_LENGTH = KEY_PREFIX.length + 8;
/** lastUsedAt is written at most this often per key (one write a minute, not one per request). */
export const LAST_USED_RESOLUTION_MS = 60_000;

/**
 * Secrets carry 256 random bits, so a plain sha256 is enough to make a stolen table useless
 * (a slow hash only matters for guessable secrets such as passwords) and keeps lookup O(1).
 */
export const hashSecret = (secret: string) => createHash('sha256').update(secret).digest('hex');

const newSecret = () => KEY_PREFIX + randomBytes(32).toString('base64url');

/** What a key row says about itself, without its hash (which is never shown). */
export type ApiKeyView = Omit<ApiKey, 'hash'>;

const withoutHash = ({ hash: _hash, ...key }: ApiKey): ApiKeyView => key;

/**
 * Revoked keys must stop working on every API instance at once, and connections opened with them
 * must close. The domain records the revocation; this tells the running instances (Redis pub/sub,
 * src/events/credentials.ts). Connections are also re-checked against the database periodically,
 * so a lost notice delays the close by seconds, never forever.
 */
export interface KeyRevocations {
  revoked(keyIds: readonly string[]): Promise<void>;
}

export const keyName = z.string().trim().min(1, 'must not be empty').max(100, 'must be at most 100 characters');

const createApiKeyInput = z.object({
  name: keyName,
  expiresInDays: z
    .number()
    .int('must be a whole number of days')
    .min(1, 'must be 1 to 3650 days')
    .max(3650, 'must be 1 to 3650 days')
    .nullish()
    .transform((v) => v ?? null),
});

/** The row and secret of a new key, for `db.apiKey.create` inside or outside a transaction. */
export function newApiKeyData(name: string, expiresAt: Date | null = null) {
  const secret = newSecret();
  return { secret, data: { name, prefix: secret.slice(0, SHOWN_PREFIX_LENGTH), hash: hashSecret(secret), expiresAt } };
}

/** A new key for the account; the secret is returned this once and never stored. */
export async function createApiKey(db: Db, accountId: string, raw: unknown): Promise<{ apiKey: ApiKeyView; secret: string }> {
  const input = parseInput(createApiKeyInput, raw);
  const expiresAt = input.expiresInDays === null ? null : new Date(Date.now() + input.expiresInDays * 86_400_000);
  const { secret, data } = newApiKeyData(input.name, expiresAt);
  const exists = await db.account.count({ where: { id: accountId } });
  if (!exists) throw notFound('Account');
  const row = await db.apiKey.create({ data: { ...data, accountId } });
  return { apiKey: withoutHash(row), secret };
}

/** The account's keys, newest first, revoked and expired ones included (never their secrets). */
export async function listApiKeys(db: Db, accountId: string): Promise<ApiKeyView[]> {
  const rows = await db.apiKey.findMany({ where: { accountId }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] });
  return rows.map(withoutHash);
}

/**
 * Revokes a key (of `accountId`, or any key when null: the operator's CLI) and tells every API
 * instance. Revoking a revoked key changes nothing and returns it as it is.
 */
export async function revokeApiKey(
  deps: { db: Db; revocations: KeyRevocations },
  accountId: string | null,
  keyId: string,
): Promise<ApiKeyView> {
  const where = accountId === null ? { id: keyId } : { id: keyId, accountId };
  await deps.db.apiKey.updateMany({ where: { ...where, revokedAt: null }, data: { revokedAt: new Date() } });
  const row = await deps.db.apiKey.findFirst({ where });
  if (!row) throw notFound('API key');
  await deps.revocations.revoked([row.id]);
  return withoutHash(row);
}

export const isKeyActive = (key: Pick<ApiKey, 'revokedAt' | 'expiresAt'>, now = Date.now()) =>
  key.revokedAt === null && (key.expiresAt === null || key.expiresAt.getTime() > now);

/** Why a key is refused, for the UNAUTHENTICATED message (the holder had the secret, so this leaks nothing). */
export const inactiveReason = (key: Pick<ApiKey, 'revokedAt'>) =>
  key.revokedAt ? 'This API key was revoked.' : 'This API key has expired.';

export type KeyLookup = { key: ApiKeyView; active: true } | { key: ApiKeyView; active: false; reason: string } | null;

/**
 * The key a secret belongs to, read from PostgreSQL on every call: there is no cache, so a
 * revocation is seen by the next request on every instance. Malformed secrets never reach the
 * database. Records the use (lastUsedAt) at most once a minute.
 */
export async function findApiKey(db: Db, secret: string): Promise<KeyLookup> {
  if (!secret.startsWith(KEY_PREFIX) || secret.length > 100) return null;
  const row = await db.apiKey.findUnique({ where: { hash: hashSecret(secret) } });
  if (!row) return null;
  const key = withoutHash(row);
  if (!isKeyActive(row)) return { key, active: false, reason: inactiveReason(row) };
  recordUse(db, row);
  return { key, active: true };
}

/** Still active: not revoked, not expired, not deleted. Used for tokens a key minted. */
export async function activeKey(db: Db, keyId: string): Promise<{ key: ApiKeyView } | { reason: string }> {
  const row = await db.apiKey.findUnique({ where: { id: keyId } });
  if (!row) return { reason: 'The API key behind this token no longer exists.' };
  if (!isKeyActive(row)) return { reason: row.revokedAt ? 'The API key that made this token was revoked.' : 'The API key that made this token has expired.' };
  return { key: withoutHash(row) };
}

/** The ids among `keyIds` that are still active, in one query (open connections are re-checked with it). */
export async function activeKeyIds(db: Db, keyIds: readonly string[]): Promise<Set<string>> {
  if (keyIds.length === 0) return new Set();
  const rows = await db.apiKey.findMany({
    where: { id: { in: [...keyIds] }, revokedAt: null, OR: [{ expiresAt: null }, { expiresAt: { gt: new Date() } }] },
    select: { id: true },
  });
  return new Set(rows.map((r) => r.id));
}

/**
 * One conditional write a minute at most: instances that race both try, and the condition lets
 * one through. Not awaited: the request never waits for bookkeeping.
 */
function recordUse(db: Db, key: Pick<ApiKey, 'id' | 'lastUsedAt'>) {
  const now = Date.now();
  if (key.lastUsedAt && now - key.lastUsedAt.getTime() < LAST_USED_RESOLUTION_MS) return;
  const stale = new Date(now - LAST_USED_RESOLUTION_MS);
  void db.apiKey
    .updateMany({ where: { id: key.id, OR: [{ lastUsedAt: null }, { lastUsedAt: { lt: stale } }] }, data: { lastUsedAt: new Date(now) } })
    .catch(() => undefined);
}
