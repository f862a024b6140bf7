import DataLoader from 'dataloader';
import { bearerToken, findAccountByApiKey } from '../domain/accounts.ts';
import { batchCounts } from '../domain/batches.ts';
import { unauthenticated } from '../domain/errors.ts';
import type { Account } from '../generated/prisma/client.ts';
import type { SubscriptionLimits } from '../events/limits.ts';
import type { Segue } from '../runtime.ts';

export interface Context {
  segue: Segue;
  account: Account | null;
  /** The caller's account id; throws UNAUTHENTICATED for a request without a valid key. */
  accountId(): string;
  loaders: ReturnType<typeof createLoaders>;
  subscriptions: SubscriptionLimits;
}

/**
 * Loaders batch the loads of one execution into one query. They keep no cache: a subscription's
 * context lives as long as the subscription, and every event it sends must show fresh counts.
 */
function createLoaders(segue: Segue) {
  return {
    batchCounts: new DataLoader(
      async (ids: readonly string[]) => {
        const counts = await batchCounts(segue.db, ids);
        return ids.map((id) => counts.get(id)!);
      },
      { cache: false },
    ),
  };
}

/** Builds the per-operation context from the Authorization value (a header, or WS connectionParams). */
export async function createContext(
  segue: Segue,
  subscriptions: SubscriptionLimits,
  authorization: string | null | undefined,
): Promise<Context> {
  const key = bearerToken(authorization);
  const account = key ? await findAccountByApiKey(segue.db, key) : null;
  return {
    segue,
    account,
    accountId() {
      if (!account) throw unauthenticated();
      return account.id;
    },
    loaders: createLoaders(segue),
    subscriptions,
  };
}
