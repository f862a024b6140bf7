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
