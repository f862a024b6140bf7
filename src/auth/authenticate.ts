import type { Db } from '../db.ts';
import { findApiKey, KEY_PREFIX } from '../domain/api-keys.ts';
import type { AccessTokens } from './access-tokens.ts';
import type { EndUsers } from './end-users.ts';
import type { Authentication } from './principal.ts';

/** Reads the credential out of an `Authorization: Bearer <credential>` value. */
export function bearerToken(header: string | null | undefined): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match ? match[1]! : null;
}

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
