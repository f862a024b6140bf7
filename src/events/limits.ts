import { AppError } from '../domain/errors.ts';
import type { Metrics } from '../metrics.ts';

/** Open subscriptions per account on this API instance, against SUBSCRIPTIONS_PER_ACCOUNT. */
export class SubscriptionLimits {
  private readonly open = new Map<string, number>();

  constructor(
    private readonly perAccount: number,
    private readonly metrics?: Metrics,
  ) {}

  /** Counts one more subscription for the account; the returned function releases it. */
  acquire(accountId: string): () => void {
    const count = this.open.get(accountId) ?? 0;
    if (count >= this.perAccount) {
      throw new AppError('LIMIT_EXCEEDED', `At most ${this.perAccount} open subscriptions per account.`, { limit: this.perAccount });
    }
    this.open.set(accountId, count + 1);
    this.metrics?.subscriptions.inc();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(accountId) ?? 1) - 1;
      if (left <= 0) this.open.delete(accountId);
      else this.open.set(accountId, left);
      this.metrics?.subscriptions.dec();
    };
  }
}
