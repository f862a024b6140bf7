import type { Sql } from '../db.ts';
import { AppError } from './errors.ts';

/**
 * What generation costs. Estimates use the price per second of the configured model
 * (config.pricePerSecondUsd); spend is the ledger of submissions to fal (FalRequest).
 */
export const estimateUsd = (pricePerSecond: number | null, seconds: number): number | null =>
  pricePerSecond === null ? null : Math.round(pricePerSecond * seconds * 10_000) / 10_000;

export interface AccountSpend {
  budgetUsd: number | null;
  /** Every request fal accepted (each may be billed, whatever became of it). */
  spentUsd: number;
  /**
   * What is committed and not accepted yet: submits on their way or whose answer was lost (fal
   * may have them), and queued work, at the estimate.
   */
  reservedUsd: number;
}

type Queryable = Pick<Sql, 'query'>;

/** Budget, spend so far, and the cost already committed by queued and in-flight work, in one query. */
export async function accountSpend(sql: Queryable, accountId: string, pricePerSecond: number | null): Promise<AccountSpend> {
  const [row] = await sql.query<{ budget: string | null; spent: string; pending: string; queued_seconds: string }>(
    `SELECT a."budgetUsd" AS budget,
            coalesce((SELECT sum(f."costUsd") FROM "FalRequest" f
                      WHERE f."accountId" = a."id" AND f."state" IN ('ACCEPTED', 'ENDED')), 0) AS spent,
            coalesce((SELECT sum(f."costUsd") FROM "FalRequest" f
                      WHERE f."accountId" = a."id" AND f."state" IN ('SUBMITTING', 'UNCERTAIN')), 0) AS pending,
            coalesce((SELECT sum(t."durationSeconds") FROM "Transition" t
                      WHERE t."accountId" = a."id" AND t."status" = 'QUEUED'), 0) AS queued_seconds
     FROM "Account" a WHERE a."id" = $1::uuid`,
    [accountId],
  );
  if (!row) return { budgetUsd: null, spentUsd: 0, reservedUsd: 0 };
  const queued = estimateUsd(pricePerSecond, Number(row.queued_seconds)) ?? 0;
  return {
    budgetUsd: row.budget === null ? null : Number(row.budget),
    spentUsd: Number(row.spent),
    reservedUsd: round4(Number(row.pending) + queued),
  };
}

const round4 = (usd: number) => Math.round(usd * 10_000) / 10_000;

/** What is left of the budget after spend and committed work (never below 0); null without a budget. */
export function remainingUsd(spend: AccountSpend): number | null {
  if (spend.budgetUsd === null) return null;
  return Math.max(0, round4(spend.budgetUsd - spend.spentUsd - spend.reservedUsd));
}

export function budgetExceeded(spend: AccountSpend, additionalUsd: number) {
  return new AppError(
    'BUDGET_EXCEEDED',
    `This would exceed the account's budget of $${spend.budgetUsd!.toFixed(2)} ` +
      `(spent $${spend.spentUsd.toFixed(2)}, committed $${spend.reservedUsd.toFixed(2)}, this $${additionalUsd.toFixed(2)}).`,
    { budgetUsd: spend.budgetUsd, spentUsd: spend.spentUsd, reservedUsd: spend.reservedUsd, requestedUsd: additionalUsd },
  );
}

/** A budget Segue cannot honour: the model's price is unknown, so nothing can be checked against it. */
export function priceUnknown(model: string) {
  return new AppError(
    'BUDGET_EXCEEDED',
    `This account has a budget, but the price of ${model} is unknown, so no generation can be checked against it: ` +
      'set FAL_PRICE_PER_SECOND.',
    { reason: 'PRICE_UNKNOWN', model },
  );
}

/** Runs `sql`-style queries on a Prisma transaction (so a check sees, and locks within, that transaction). */
const txSql = (tx: { $queryRawUnsafe<T>(query: string, ...values: unknown[]): Promise<T> }): Queryable => ({
  query: <T>(text: string, values: readonly unknown[]) => tx.$queryRawUnsafe<T[]>(text, ...values),
});

/**
 * In a transaction that queues `seconds` of video for the account: when it has a budget, lock the
 * account row (concurrent requests of the account queue up here) and refuse work the budget
 * cannot cover (spent + committed + queued + this). This is the early, friendly refusal; the one
 * that guarantees the budget is the reservation made with each submit (ledger.claimSubmit).
 */
export async function reserveWithinBudget(
  tx: { $queryRawUnsafe<T>(query: string, ...values: unknown[]): Promise<T> },
  accountId: string,
  pricing: { pricePerSecondUsd: number | null; model: string },
  seconds: number,
) {
  const sql = txSql(tx);
  const budgeted = `SELECT "budgetUsd" IS NOT NULL AS budgeted FROM "Account" WHERE "id" = $1::uuid`;
  const [account] = await sql.query<{ budgeted: boolean }>(budgeted, [accountId]);
  if (!account?.budgeted) return;
  // Only budgeted accounts serialize their spending: the lock makes concurrent reservations add up.
  const [locked] = await sql.query<{ budgeted: boolean }>(`${budgeted} FOR UPDATE`, [accountId]);
  if (!locked?.budgeted) return;
  if (pricing.pricePerSecondUsd === null) throw priceUnknown(pricing.model);
  const spend = await accountSpend(sql, accountId, pricing.pricePerSecondUsd);
  const additional = estimateUsd(pricing.pricePerSecondUsd, seconds) ?? 0;
  if (spend.spentUsd + spend.reservedUsd + additional > spend.budgetUsd! + 1e-9) throw budgetExceeded(spend, additional);
}
