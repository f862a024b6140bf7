import { z } from 'zod';
import type { Db } from '../db.ts';
import { newApiKeyData } from './api-keys.ts';
import { badInput, notFound } from './errors.ts';

const accountName = z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters');

/** A new account with its first API key ("default"); the key's secret is returned this once. */
export async function createAccount(db: Db, name: string) {
  const parsed = accountName.safeParse(name);
  if (!parsed.success) throw badInput(`Account name ${parsed.error.issues[0]!.message}.`, ['name']);
  const { secret, data } = newApiKeyData('default');
  const account = await db.account.create({ data: { name: parsed.data, apiKeys: { create: data } } });
  return { account, apiKey: secret };
}

export function listAccounts(db: Db) {
  return db.account.findMany({ orderBy: { createdAt: 'asc' }, select: { id: true, name: true, createdAt: true } });
}

/** Sets (or, with null, removes) an account's spending limit in USD. */
export async function setBudget(db: Db, accountId: string, budgetUsd: number | null) {
  if (budgetUsd !== null && (!Number.isFinite(budgetUsd) || budgetUsd < 0)) {
    throw badInput('A budget is a positive amount of USD, or "none".', ['budgetUsd']);
  }
  const updated = await db.account.updateMany({ where: { id: accountId }, data: { budgetUsd } });
  if (updated.count === 0) throw notFound('Account');
}

/**
 * The account of an end user of the app's identity provider: found by (issuer, subject), or
 * made on first sight with the given name and budget. Two first requests at once make one
 * account (the unique key decides; the loser reads the winner's row).
 */
export async function accountForEndUser(
  db: Db,
  user: { issuer: string; subject: string; name: string; budgetUsd: number | null },
): Promise<{ id: string }> {
  const where = { authIssuer_authSubject: { authIssuer: user.issuer, authSubject: user.subject } };
  const known = await db.account.findUnique({ where, select: { id: true } });
  if (known) return known;
  const name = user.name.trim().slice(0, 200) || user.subject.slice(0, 200);
  try {
    return await db.account.create({
      data: { name, authIssuer: user.issuer, authSubject: user.subject, budgetUsd: user.budgetUsd },
      select: { id: true },
    });
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'P2002') throw error;
    return db.account.findUniqueOrThrow({ where, select: { id: true } });
  }
}
