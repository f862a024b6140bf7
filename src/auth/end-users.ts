import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { EndUserAuth } from '../config.ts';
import type { Db } from '../db.ts';
import { accountForEndUser } from '../domain/accounts.ts';
import { AppError } from '../domain/errors.ts';
import type { Logger } from '../logger.ts';
import type { Authentication } from './principal.ts';

/** Public-key algorithms only: a JWKS holds public keys, and HS* with a public key is an old trick. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];

export interface EndUsers {
  verify(token: string): Promise<Authentication>;
}

/**
 * End users of the app's own identity provider (Auth0, Clerk, Cognito, Keycloak...), as Hasura
 * and PostGraphile take them: a bearer JWT verified (jose) against the provider's JWKS, its issuer
 * and audience, and mapped to an account by one claim (AUTH_ACCOUNT_CLAIM, `sub` by default),
 * made on first sight. The key set is cached by jose (10 min) and refetched at most every 30 s
 * for an unknown key id.
 */
export function endUsers(deps: { db: Db; config: EndUserAuth; logger: Logger }): EndUsers {
  const { config } = deps;
  const jwks = createRemoteJWKSet(new URL(config.jwksUrl), { timeoutDuration: 5_000 });
  const claim = (payload: JWTPayload, name: string) => {
    const value = payload[name];
    return typeof value === 'string' || typeof value === 'number' ? String(value) : null;
  };
  return {
    async verify(token) {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, jwks, {
          algorithms: ALGORITHMS,
          ...(config.issuer ? { issuer: config.issuer } : {}),
          ...(config.audience ? { audience: config.audience } : {}),
          requiredClaims: ['exp'],
        }));
      } catch (error) {
        if (error instanceof joseErrors.JWTExpired) return { principal: null, failure: 'This sign-in token has expired.' };
        if (keySetUnreachable(error)) {
          deps.logger.warn({ err: error, jwksUrl: config.jwksUrl }, 'the identity provider’s key set cannot be read');
          throw new AppError('UNAVAILABLE', 'The identity provider’s keys cannot be read right now; try again shortly.');
        }
        return { principal: null, failure: null };
      }
      const subject = claim(payload, config.accountClaim);
      if (!subject) return { principal: null, failure: `The sign-in token has no "${config.accountClaim}" claim.` };
      const account = await accountForEndUser(deps.db, {
        issuer: typeof payload.iss === 'string' ? payload.iss : '',
        subject,
        name: claim(payload, config.nameClaim) ?? subject,
        budgetUsd: config.defaultBudgetUsd,
      });
      return { principal: { kind: 'user', accountId: account.id, keyId: null, expiresAt: new Date(payload.exp! * 1000) } };
    },
  };
}

/** The key set could not be fetched (network, timeout, not 200): an outage, not a bad token. */
function keySetUnreachable(error: unknown) {
  if (error instanceof joseErrors.JWKSTimeout) return true;
  if (error instanceof joseErrors.JOSEError) return /JSON Web Key Set HTTP response/.test(error.message);
  return error instanceof TypeError;
}
