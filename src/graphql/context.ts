import DataLoader from 'dataloader';
import type { AccessTokens } from '../auth/access-tokens.ts';
import type { Authenticator } from '../auth/authenticate.ts';
import type { AccessScope, Authentication, Principal } from '../auth/principal.ts';
import type { CredentialSessions } from '../auth/sessions.ts';
import { batchCounts, type BatchCounts } from '../domain/batches.ts';
import { forbidden, unauthenticated } from '../domain/errors.ts';
import type { SubscriptionLimits } from '../events/limits.ts';
import type { Segue } from '../runtime.ts';

export interface Context {
  segue: Segue;
  /** Who is calling; null without a valid credential (only the schema itself is public). */
  principal: Principal | null;
  /** Why the credential was refused, when it was (expired, revoked): the UNAUTHENTICATED message. */
  authFailure: string | null;
  /** The caller's account id; throws UNAUTHENTICATED for a request without a valid credential. */
  accountId(): string;
  /**
   * The account id for what needs the whole account (mutations, viewer, keys): a browser token
   * gets FORBIDDEN. The authentication plugin refuses those root fields already; this is the
   * resolvers' own guard.
   */
  ownerAccountId(): string;
  /** What a browser token may read; null for credentials that reach the whole account. */
  scope: AccessScope | null;
  loaders: Loaders;
  subscriptions: SubscriptionLimits;
  /** Open connections and streams, ended when their credential stops being valid. */
  sessions: CredentialSessions;
  /** Mints browser tokens (createAccessToken). */
  tokens: AccessTokens;
}

/**
 * Loaders batch the loads of one execution into one query. They keep no cache: a subscription's
 * context lives as long as the subscription, and every event it sends must show fresh counts.
 * Each is made on first use (most subscriptions never need one); a class, so that costs no
 * per-context closures.
 */
class Loaders {
  private counts: DataLoader<string, BatchCounts> | undefined;

  constructor(private readonly segue: Segue) {}

  get batchCounts(): DataLoader<string, BatchCounts> {
    return (this.counts ??= new DataLoader(
      async (ids: readonly string[]) => {
        const found = await batchCounts(this.segue, ids);
        return ids.map((id) => found.get(id)!);
      },
      { cache: false },
    ));
  }
}

export interface ContextDeps {
  segue: Segue;
  authenticator: Authenticator;
  subscriptions: SubscriptionLimits;
  sessions: CredentialSessions;
  tokens: AccessTokens;
}

/** Builds the per-operation context from the Authorization header (HTTP and SSE). */
export async function createContext(deps: ContextDeps, authorization: string | null | undefined): Promise<Context> {
  return contextOf(deps, await deps.authenticator.authenticate(authorization));
}

/**
 * The context for a caller already authenticated (a WebSocket connection checks its credential
 * once, and closes when it is revoked).
 */
export function contextOf(deps: ContextDeps, { principal, failure }: Authentication): Context {
  return {
    segue: deps.segue,
    principal,
    authFailure: failure ?? null,
    accountId,
    ownerAccountId,
    scope: principal?.kind === 'token' ? principal.scope : null,
    loaders: new Loaders(deps.segue),
    subscriptions: deps.subscriptions,
    sessions: deps.sessions,
    tokens: deps.tokens,
  };
}

// Shared by every context and reading it through `this` (Yoga copies the context into its own
// object, so it cannot be a class): a subscription's context lives as long as the subscription,
// and two closures per context, with the scope they captured, cost every idle subscriber.
function accountId(this: Pick<Context, 'principal' | 'authFailure'>): string {
  if (!this.principal) throw unauthenticated(this.authFailure ?? undefined);
  return this.principal.accountId;
}

function ownerAccountId(this: Pick<Context, 'principal' | 'authFailure'>): string {
  const id = accountId.call(this);
  if (this.principal!.kind === 'token') throw forbidden('A browser token can only read the batch or transition it was made for.');
  return id;
}
