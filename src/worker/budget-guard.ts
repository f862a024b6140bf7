import { accountSpend, budgetExceeded, estimateUsd, hasBudget } from '../domain/costs.ts';
import type { Transition } from '../generated/prisma/client.ts';
import { ProviderError } from '../providers/provider.ts';
import type { Segue } from '../runtime.ts';

const TTL_MS = 30_000;

/**
 * Last check before money is spent: a submit (a first attempt or a retry) that would take its
 * account past its budget is not sent. Generation requests were already checked when they were
 * queued; retries cost more than that estimate, which is what this catches. Most accounts have no
 * budget: whether one does is remembered for a while, so they cost no query per submit.
 */
export class BudgetGuard {
  private readonly budgeted = new Map<string, { value: boolean; at: number }>();

  constructor(private readonly segue: Pick<Segue, 'db' | 'sql' | 'config'>) {}

  async check(row: Transition): Promise<ProviderError | null> {
    const cached = this.budgeted.get(row.accountId);
    let budgeted = cached && Date.now() - cached.at < TTL_MS ? cached.value : null;
    if (budgeted === null) {
      budgeted = await hasBudget(this.segue.db, row.accountId);
      this.budgeted.set(row.accountId, { value: budgeted, at: Date.now() });
    }
    if (!budgeted) return null;
    const price = this.segue.config.pricePerSecondUsd;
    const spend = await accountSpend(this.segue.sql, row.accountId, price);
    const cost = estimateUsd(price, row.durationSeconds) ?? 0;
    if (spend.budgetUsd === null || spend.spentUsd + cost <= spend.budgetUsd + 1e-9) return null;
    const refusal = budgetExceeded({ ...spend, reservedUsd: 0 }, cost);
    return new ProviderError('BUDGET_EXCEEDED', refusal.message, { retryable: false });
  }
}
