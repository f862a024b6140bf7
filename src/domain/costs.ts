import type { Db, Sql } from '../db.ts';
import { AppError } from './errors.ts';

/**
 * What generation costs. Estimates use the price per second of the configured model
 * (config.pricePerSecondUsd); spend is the ledger of requests fal accepted (FalRequest), each of
 * which may be billed, whatever became of it.
 */
export const estimateUsd = (pricePerSecond: number | null, seconds: number): number | null =>
  pricePerSecond === null ? null : Math.round(pricePerSecond * seconds * 10_000) / 10_000;

export interface AccountSpend {
  budgetUsd: number | null;
  spentUsd: number;
  /** Estimated cost of what is queued or being submitted and not billed yet. */
  reservedUsd: number;
}

/** Budget, spend so far, and the cost already committed by queued work, in one query. */
export async function accountSpend(sql: Sql, accountId: string, pricePerSecond: number | null): Promise<AccountSpend> {
  const [row] = await sql.query<{ budget: string | null; spent: string; reserved_seconds: string }>(
    `SELECT a."budgetUsd" AS budget,
            coalesce((SELECT sum(f."costUsd") FROM "FalRequest" f WHERE f."accountId" = a."id"), 0) AS spent,
            coalesce((SELECT sum(t."durationSeconds") FROM "Transition" t
                      WHERE t."accountId" = a."id"
                        AND (t."status" = 'QUEUED' OR (t."status" = 'SUBMITTED' AND t."falRequestId" IS NULL))), 0) AS reserved_seconds
     FROM "Account" a WHERE a."id" = $1::uuid`,
    [accountId],
  );
  if (!row) return { budgetUsd: null, spentUsd: 0, reservedUsd: 0 };
  return {
    budgetUsd: row.budget === null ? null : Number(row.budget),
    spentUsd: Number(row.spent),
    reservedUsd: estimateUsd(pricePerSecond, Number(row.reserved_seconds)) ?? 0,
  };
}

/** What is left of the budget after spend and queued work (never below 0); null without a budget. */
export function remainingUsd(spend: AccountSpend): number | null {
  if (spend.budgetUsd === null) return null;
  return Math.max(0, Math.round((spend.budgetUsd - spend.spentUsd - spend.reservedUsd) * 10_000) / 10_000);
}

export function budgetExceeded(spend: AccountSpend, additionalUsd: number) {
  return new AppError(
    'BUDGET_EXCEEDED',
    `This would exceed the account's budget of $${spend.budgetUsd!.toFixed(2)} ` +
      `(spent $${spend.spentUsd.toFixed(2)}, queued $${spend.reservedUsd.toFixed(2)}, this $${additionalUsd.toFixed(2)}).`,
    { budgetUsd: spend.budgetUsd, spentUsd: spend.spentUsd, reservedUsd: spend.reservedUsd, requestedUsd: additionalUsd },
  );
}

/**
 * Refuses new generation that would take the account past its budget: spend so far, plus what is
 * queued, plus this. Call inside the transaction that queues the work, after `lockAccount`, so
 * two concurrent requests cannot both fit in the same remaining budget.
 */
export async function assertBudget(sql: Sql, accountId: string, pricePerSecond: number | null, seconds: number) {
  const spend = await accountSpend(sql, accountId, pricePerSecond);
  if (spend.budgetUsd === null) return;
  const additional = estimateUsd(pricePerSecond, seconds) ?? 0;
  if (spend.spentUsd + spend.reservedUsd + additional > spend.budgetUsd + 1e-9) throw budgetExceeded(spend, additional);
}

/** Whether the account has a budget at all (most do not; they skip every check). */
export async function hasBudget(db: Db, accountId: string) {
  const account = await db.account.findUnique({ where: { id: accountId }, select: { budgetUsd: true } });
  return account?.budgetUsd != null;
}

/** Runs `sql`-style queries on a Prisma transaction (so a check sees, and locks within, that transaction). */
export const txSql = (tx: { $queryRawUnsafe<T>(query: string, ...values: unknown[]): Promise<T> }): Sql => ({
  query: <T>(text: string, values: readonly unknown[]) => tx.$queryRawUnsafe<T[]>(text, ...values),
});

/**
 * In a transaction that queues `seconds` of video for the account: when it has a budget, lock the
 * account row (concurrent requests of the account queue up here) and check the budget.
 */
export async function reserveWithinBudget(
  tx: { $queryRawUnsafe<T>(query: string, ...values: unknown[]): Promise<T> },
  accountId: string,
  pricePerSecond: number | null,
  seconds: number,
) {
  const sql = txSql(tx);
  const budgeted = `SELECT "budgetUsd" IS NOT NULL AS budgeted FROM "Account" WHERE "id" = $1::uuid`;
  const [account] = await sql.query<{ budgeted: boolean }>(budgeted, [accountId]);
  if (!account?.budgeted) return;
  // Only budgeted accounts serialize their spending: the lock makes concurrent reservations add up.
  const [locked] = await sql.query<{ budgeted: boolean }>(`${budgeted} FOR UPDATE`, [accountId]);
  if (locked?.budgeted) await assertBudget(sql, accountId, pricePerSecond, seconds);
}
