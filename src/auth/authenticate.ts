import type { Db } from '../db.ts';
import { findApiKey, KEY_PREFIX } from '../domain/api-keys.ts';
import type { AccessTokens } from './access-tokens.ts';
import type { EndUsers } from './end-users.ts';
import type { Authentication } from './principal.ts';

/**
 * Reads the credential out of an `Authorization: Bearer <credential>` value: the scheme (any
 * case), white space, one word, and nothing after it but white space.
 * Without a regular expression: V8 keeps the subject of the last successful match reachable
 * (RegExp.lastMatch, $1) until the next one anywhere in the process, and a credential must not
 * linger after the connection that presented it was checked.
 */
export function bearerToken(header: string | null | undefined): string | null {
  if (!header || header.slice(0, 6).toLowerCase() !== 'bearer') return null;
  const rest = header.slice(6);
  if (!isSpace(rest.charAt(0))) return null;
  const credential = rest.trim();
  for (let i = 0; i < credential.length; i++) if (isSpace(credential.charAt(i))) return null;
  return credential === '' ? null : credential;
}

/** White space as `\s` means it (trim() removes exactly that set); false for ''. */
const isSpace = (char: string) => char !== '' && char.trim() === '';

/** Turns an Authorization value (HTTP header or WebSocket connectionParams) into a principal. */
export interface Authenticator {
  authenticate(authorization: string | null | undefined): Promise<Authentication>;
}

const refused = (failure: string | null = null): Authentication => ({ principal: null, failure });

/**
 * Three kinds of credential, told apart before any is verified: API keys start with `sg_`;
 * browser tokens are JWTs this server issued (iss "segue"); anything else is tried as an end
 * user's JWT from the app's identity provider, when one is configured.
 */
export function createAuthenticator(deps: { db: Db; tokens: AccessTokens | null; endUsers?: EndUsers | null }): Authenticator {
  return {
    async authenticate(authorization) {
      const credential = bearerToken(authorization);
      if (!credential) return refused();
      if (credential.startsWith(KEY_PREFIX)) {
        const found = await findApiKey(deps.db, credential);
        if (!found) return refused();
        if (!found.active) return refused(found.reason);
        const { key } = found;
        return { principal: { kind: 'key', accountId: key.accountId, keyId: key.id, expiresAt: key.expiresAt } };
      }
      if (deps.tokens?.isAccessToken(credential)) return deps.tokens.verify(credential);
      if (deps.endUsers) return deps.endUsers.verify(credential);
      return refused();
    },
  };
}
