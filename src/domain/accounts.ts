import { createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Db } from '../db.ts';
import { badInput, notFound } from './errors.ts';

const KEY_PREFIX = 'sg_';

/**
 * API keys carry 256 random bits, so a plain sha256 is enough to make a stolen table useless
 * (a slow hash only matters for guessable secrets such as passwords) and keeps lookup O(1).
 */
export const hashApiKey = (apiKey: string) => createHash('sha256').update(apiKey).digest('hex');

const generateApiKey = () => KEY_PREFIX + randomBytes(32).toString('base64url');

const accountName = z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters');

export async function createAccount(db: Db, name: string) {
  const parsed = accountName.safeParse(name);
  if (!parsed.success) throw badInput(`Account name ${parsed.error.issues[0]!.message}.`, ['name']);
  const apiKey = generateApiKey();
  const account = await db.account.create({ data: { name: parsed.data, apiKeyHash: hashApiKey(apiKey) } });
  return { account, apiKey };
}

/** The account an API key belongs to, or null. Malformed keys never reach the database. */
export async function findAccountByApiKey(db: Db, apiKey: string) {
  if (!apiKey.startsWith(KEY_PREFIX) || apiKey.length > 100) return null;
  return db.account.findUnique({ where: { apiKeyHash: hashApiKey(apiKey) } });
}

export function listAccounts(db: Db) {
  return db.account.findMany({ orderBy: { createdAt: 'asc' }, select: { id: true, name: true, createdAt: true } });
}

/** Reads the key out of an `Authorization: Bearer <key>` header value. */
export function bearerToken(header: string | null | undefined): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match ? match[1]! : null;
}

/** Sets (or, with null, removes) an account's spending limit in USD. */
export async function setBudget(db: Db, accountId: string, budgetUsd: number | null) {
  if (budgetUsd !== null && (!Number.isFinite(budgetUsd) || budgetUsd < 0)) {
    throw badInput('A budget is a positive amount of USD, or "none".', ['budgetUsd']);
  }
  const updated = await db.account.updateMany({ where: { id: accountId }, data: { budgetUsd } });
  if (updated.count === 0) throw notFound('Account');
}
