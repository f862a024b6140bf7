import { randomUUID } from 'node:crypto';
import { decodeJwt, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import type { Db } from '../db.ts';
import { activeKey } from '../domain/api-keys.ts';
import { forbidden, notFound } from '../domain/errors.ts';
import { parseInput } from '../domain/transition-input.ts';
import type { AccessScope, Authentication, Principal } from './principal.ts';

/**
 * Browser tokens: short-lived JWTs (HS256, signed with TOKEN_SECRET through jose) that let a
 * browser read and follow one batch or one transition, and nothing else. They carry who minted
 * them (account, key) and what they reach, never a secret: a token can be put in a link.
 */
const ISSUER = 'segue';
const AUDIENCE = 'segue:browser';
const ALGORITHM = 'HS256';

export const TOKEN_TTL = { defaultSeconds: 900, minSeconds: 60, maxSeconds: 86_400 } as const;

/** Trigger.dev-style scope strings: `read:batch:<id>` or `read:transition:<id>` (database ids). */
const SCOPE = /^read:(batch|transition):([0-9a-f-]{36})$/;
const scopeString = (scope: AccessScope) =>
  scope.batchId !== undefined ? `read:batch:${scope.batchId}` : `read:transition:${scope.transitionId}`;
function parseScope(value: unknown): AccessScope | null {
  const match = typeof value === 'string' ? SCOPE.exec(value) : null;
  if (!match) return null;
  return match[1] === 'batch' ? { batchId: match[2]! } : { transitionId: match[2]! };
}

const tokenInput = z
  .object({
    batchId: z.string().nullish(),
    transitionId: z.string().nullish(),
    ttlSeconds: z
      .number()
      .int('must be a whole number of seconds')
      .min(TOKEN_TTL.minSeconds, `must be ${TOKEN_TTL.minSeconds} to ${TOKEN_TTL.maxSeconds} seconds`)
      .max(TOKEN_TTL.maxSeconds, `must be ${TOKEN_TTL.minSeconds} to ${TOKEN_TTL.maxSeconds} seconds`)
      .nullish()
      .transform((v) => v ?? TOKEN_TTL.defaultSeconds),
  })
  .superRefine((value, ctx) => {
    if (!value.batchId === !value.transitionId) {
      for (const path of ['batchId', 'transitionId']) {
        ctx.addIssue({ code: 'custom', path: [path], message: 'exactly one of batchId and transitionId is required' });
      }
    }
  });

export interface MintedToken {
  token: string;
  expiresAt: Date;
  scope: string;
}

export interface AccessTokens {
  /** False in production without TOKEN_SECRET: no token is minted or accepted. */
  readonly enabled: boolean;
  /** True for a JWT this server issues (read unverified, to route it; verify() decides). */
  isAccessToken(credential: string): boolean;
  /** Signs a token; `mint` (below) is the service that checks what may be minted. */
  sign(claims: { accountId: string; keyId: string | null; scope: AccessScope; expiresAt: Date }): Promise<MintedToken>;
  verify(token: string): Promise<Authentication>;
}

export function accessTokens(deps: { db: Db; secret: string | null }): AccessTokens {
  const key = deps.secret === null ? null : new TextEncoder().encode(deps.secret);
  return {
    enabled: key !== null,
    isAccessToken(credential) {
      try {
        return decodeJwt(credential).iss === ISSUER;
      } catch {
        return false;
      }
    },
    async sign({ accountId, keyId, scope, expiresAt }) {
      if (!key) throw tokensOff();
      const claims = { scope: scopeString(scope), ...(keyId ? { key: keyId } : {}) };
      const token = await new SignJWT(claims)
        .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject(accountId)
        .setJti(randomUUID())
        .setIssuedAt()
        .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
        .sign(key);
      return { token, expiresAt: new Date(Math.floor(expiresAt.getTime() / 1000) * 1000), scope: claims.scope };
    },
    async verify(token) {
      if (!key) return { principal: null, failure: 'Browser tokens are off on this server (no TOKEN_SECRET).' };
      let payload;
      try {
        ({ payload } = await jwtVerify(token, key, {
          issuer: ISSUER,
          audience: AUDIENCE,
          algorithms: [ALGORITHM],
          requiredClaims: ['sub', 'exp', 'scope'],
        }));
      } catch (error) {
        return { principal: null, failure: error instanceof joseErrors.JWTExpired ? 'This browser token has expired.' : null };
      }
      const scope = parseScope(payload.scope);
      if (!scope || typeof payload.sub !== 'string') return { principal: null, failure: null };
      const keyId = typeof payload.key === 'string' ? payload.key : null;
      let expiresAt = new Date(payload.exp! * 1000);
      // Revoking (or the expiry of) the key that minted a token ends the token too.
      if (keyId) {
        const minter = await activeKey(deps.db, keyId);
        if ('reason' in minter) return { principal: null, failure: minter.reason };
        if (minter.key.expiresAt && minter.key.expiresAt < expiresAt) expiresAt = minter.key.expiresAt;
      }
      const principal: Principal = { kind: 'token', accountId: payload.sub, keyId, scope, expiresAt };
      return { principal };
    },
  };
}

const tokensOff = () =>
  forbidden('Browser tokens are off on this server: its operator must set TOKEN_SECRET (required in production).');

/**
 * createAccessToken: a token for one batch or one transition of the caller's account, for
 * `ttlSeconds` (60 s to 24 h, 15 min by default), never outliving the key that mints it.
 * Only a credential that reaches the whole account can mint (a token cannot make tokens).
 */
export async function mintAccessToken(
  deps: { db: Db; tokens: AccessTokens },
  principal: Principal,
  raw: { batchId?: string | null; transitionId?: string | null; ttlSeconds?: number | null },
): Promise<MintedToken> {
  if (principal.kind === 'token') throw forbidden('A browser token cannot make tokens.');
  if (!deps.tokens.enabled) throw tokensOff();
  const input = parseInput(tokenInput, raw);
  const { accountId } = principal;
  let scope: AccessScope;
  if (input.batchId) {
    const batch = await deps.db.batch.findFirst({ where: { id: input.batchId, accountId }, select: { id: true } });
    if (!batch) throw notFound('Batch', ['batchId']);
    scope = { batchId: batch.id };
  } else {
    const transition = await deps.db.transition.findFirst({ where: { id: input.transitionId!, accountId }, select: { id: true } });
    if (!transition) throw notFound('Transition', ['transitionId']);
    scope = { transitionId: transition.id };
  }
  let expiresAt = new Date(Date.now() + input.ttlSeconds * 1000);
  if (principal.kind === 'key' && principal.expiresAt && principal.expiresAt < expiresAt) expiresAt = principal.expiresAt;
  return deps.tokens.sign({ accountId, keyId: principal.keyId, scope, expiresAt });
}
