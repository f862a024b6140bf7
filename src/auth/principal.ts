/**
 * Who is calling, and how far they reach. Every request and every connection carries one (or
 * none: only the schema itself is public).
 * - key: an API key of the account; the whole account.
 * - user: an end user of the app's identity provider (AUTH_JWKS_URL), mapped to an account; the
 *   whole account.
 * - token: a browser token (createAccessToken); reads and subscriptions within its scope only.
 */
export type Principal =
  | { kind: 'key'; accountId: string; keyId: string; expiresAt: Date | null }
  | { kind: 'user'; accountId: string; keyId: null; expiresAt: Date | null }
  | { kind: 'token'; accountId: string; keyId: string | null; scope: AccessScope; expiresAt: Date };

/** What a browser token may read: one batch (and its transitions), or one transition. Database ids. */
export type AccessScope = { batchId: string; transitionId?: undefined } | { transitionId: string; batchId?: undefined };

/** The result of reading a credential: who it is, or why it is refused (for the UNAUTHENTICATED message). */
export type Authentication = { principal: Principal; failure?: undefined } | { principal: null; failure: string | null };
