import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, UnsecuredJWT, type CryptoKey, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codes, createTestAccount, gql, startTestApp, type TestApp } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions, GetTransition, ListTransitions, TransitionUpdated, Viewer } from './helpers/operations.ts';
import { subscribe, wsClient } from './helpers/subscribe.ts';

/**
 * A stand-in for an app's identity provider: its key set on a local HTTP server, and tokens
 * signed with its private key, as Auth0 or Clerk would issue them.
 */
const ISSUER = 'https://idp.example.test/';
const AUDIENCE = 'segue-app';
let jwks: Server;
let jwksUrl: string;
let jwksRequests = 0;
let signingKey: CryptoKey;
let strangerKey: CryptoKey;
let app: TestApp;

beforeAll(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  signingKey = pair.privateKey;
  strangerKey = (await generateKeyPair('ES256')).privateKey;
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' };
  jwks = createServer((_req, res) => {
    jwksRequests += 1;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [publicJwk] }));
  });
  await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
  jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;
  app = await startTestApp({ AUTH_JWKS_URL: jwksUrl, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE, AUTH_DEFAULT_BUDGET_USD: '5' });
});
afterAll(async () => {
  await app?.close();
  await new Promise((resolve) => jwks?.close(resolve));
});

const unique = () => `user-${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;

function idToken(claims: JWTPayload, options: { key?: CryptoKey; issuer?: string; audience?: string; expiresIn?: string | number } = {}) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
    .setIssuer(options.issuer ?? ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '10m')
    .sign(options.key ?? signingKey);
}

const SpendQuery = `{ viewer { id name spend { budgetUsd } } }`;
async function viewer(token: string) {
  const res = await fetch(app.graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: SpendQuery }),
  });
  return (await res.json()) as { data?: { viewer: { id: string; name: string; spend: { budgetUsd: number | null } } }; errors?: Array<{ message: string; extensions: { code: string } }> };
}

describe('end users of an identity provider (AUTH_JWKS_URL)', () => {
  it('two subjects become two accounts, made on first sight with their names and the default budget, that cannot see each other', async () => {
    const [ada, grace] = [unique(), unique()];
    const adaToken = await idToken({ sub: ada, name: 'Ada Lovelace' });
    const graceToken = await idToken({ sub: grace, name: 'Grace Hopper' });

    const first = await viewer(adaToken);
    expect(first.data!.viewer).toMatchObject({ name: 'Ada Lovelace', spend: { budgetUsd: 5 } });
    const other = await viewer(graceToken);
    expect(other.data!.viewer).toMatchObject({ name: 'Grace Hopper', spend: { budgetUsd: 5 } });
    expect(other.data!.viewer.id).not.toBe(first.data!.viewer.id);
    // The same subject again, with a fresh token: the same account, not a new one.
    expect((await viewer(await idToken({ sub: ada, name: 'Ada L.' }))).data!.viewer).toMatchObject({ id: first.data!.viewer.id, name: 'Ada Lovelace' });
    expect(await app.segue.db.account.count({ where: { authSubject: ada } })).toBe(1);

    const created = await gql(app.graphqlUrl, adaToken, CreateTransitions, { input: { transitions: transitionInputs(2) } });
    const adaIds = created.data!.createTransitions.transitions.map((t) => t.id);
    expect(codes(await gql(app.graphqlUrl, graceToken, GetTransition, { id: adaIds[0]! }))).toEqual(['NOT_FOUND']);
    const graceList = await gql(app.graphqlUrl, graceToken, ListTransitions, { first: 50 });
    expect(graceList.data!.transitions.edges).toEqual([]);
    const adaList = await gql(app.graphqlUrl, adaToken, ListTransitions, { first: 50 });
    expect(adaList.data!.transitions.edges.map((e) => e.node.id).sort()).toEqual([...adaIds].sort());
  });

  it('several first requests at once make one account', async () => {
    const sub = unique();
    const token = await idToken({ sub, name: 'Many tabs' });
    const answers = await Promise.all(Array.from({ length: 6 }, () => viewer(token)));
    expect(new Set(answers.map((a) => a.data!.viewer.id)).size).toBe(1);
    expect(await app.segue.db.account.count({ where: { authSubject: sub } })).toBe(1);
  });

  it('refuses a bad signature, another issuer, another audience, an expired token and unsigned or HMAC tokens with UNAUTHENTICATED', async () => {
    const sub = unique();
    const bad: Array<[string, string]> = [
      ['signed by another key', await idToken({ sub }, { key: strangerKey })],
      ['another issuer', await idToken({ sub }, { issuer: 'https://evil.example.test/' })],
      ['another audience', await idToken({ sub }, { audience: 'some-other-app' })],
      ['expired', await idToken({ sub }, { expiresIn: Math.floor(Date.now() / 1000) - 60 })],
      ['unsigned (alg none)', new UnsecuredJWT({ sub }).setIssuer(ISSUER).setAudience(AUDIENCE).setExpirationTime('10m').encode()],
      [
        'HS256 with the public key as secret',
        await new SignJWT({ sub })
          .setProtectedHeader({ alg: 'HS256', kid: 'idp-1' })
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setExpirationTime('10m')
          .sign(new TextEncoder().encode(JSON.stringify((await (await fetch(jwksUrl)).json()) as object))),
      ],
    ];
    for (const [what, token] of bad) {
      const answer = await viewer(token);
      expect(answer.errors?.map((e) => e.extensions.code), what).toEqual(['UNAUTHENTICATED']);
    }
    expect((await viewer(bad[3]![1])).errors![0]!.message).toMatch(/expired/);
    expect(await app.segue.db.account.count({ where: { authSubject: sub } })).toBe(0);
    // A token without the account claim names no account.
    const nameless = await new SignJWT({ name: 'No subject' })
      .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime('10m')
      .sign(signingKey);
    const answer = await viewer(nameless);
    expect(answer.errors?.map((e) => e.extensions.code)).toEqual(['UNAUTHENTICATED']);
    expect(answer.errors![0]!.message).toMatch(/"sub" claim/);
  });

  it('keeps API keys working alongside, and opens WebSockets with the end user’s token', async () => {
    const account = await createTestAccount(app.segue);
    expect((await gql(app.graphqlUrl, account.apiKey, Viewer)).data!.viewer.name).toMatch(/^test-/);

    await viewer(await idToken({ sub: unique() })); // the key set is fetched by now
    const fetchedBefore = jwksRequests;
    const token = await idToken({ sub: unique(), name: 'Live viewer' });
    const created = await gql(app.graphqlUrl, token, CreateTransitions, { input: { transitions: transitionInputs(1) } });
    const id = created.data!.createTransitions.transitions[0]!.id;
    const ws = wsClient(app.graphqlUrl, token);
    const sub = subscribe(ws, TransitionUpdated, { id }, (d) => d.transitionUpdated);
    expect((await sub.first).id).toBe(id);
    await ws.dispose();
    // The key set is cached: verifying more tokens fetched nothing.
    expect(jwksRequests).toBe(fetchedBefore);
  });

  it('maps accounts by AUTH_ACCOUNT_CLAIM (an organisation shared by its members), named by AUTH_NAME_CLAIM, with no budget by default', async () => {
    const orgApp = await startTestApp({ AUTH_JWKS_URL: jwksUrl, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: `other-app,${AUDIENCE}`, AUTH_ACCOUNT_CLAIM: 'org_id', AUTH_NAME_CLAIM: 'org_name' });
    try {
      const org = `org-${unique()}`;
      const ask = async (sub: string) => {
        const res = await fetch(orgApp.graphqlUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${await idToken({ sub, org_id: org, org_name: 'Acme Films' })}` },
          body: JSON.stringify({ query: SpendQuery }),
        });
        return ((await res.json()) as { data: { viewer: { id: string; name: string; spend: { budgetUsd: number | null } } } }).data.viewer;
      };
      const [alice, bob] = [await ask(unique()), await ask(unique())];
      expect(alice).toEqual(bob);
      expect(alice).toMatchObject({ name: 'Acme Films', spend: { budgetUsd: null } });
    } finally {
      await orgApp.close();
    }
  });

  it('answers UNAVAILABLE, not UNAUTHENTICATED, while the key set cannot be fetched', async () => {
    const down = await startTestApp({ AUTH_JWKS_URL: 'http://127.0.0.1:1/jwks.json', AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE });
    try {
      const res = await fetch(down.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await idToken({ sub: unique() })}` },
        body: JSON.stringify({ query: '{ viewer { id } }' }),
      });
      const body = (await res.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
      expect(body.errors.map((e) => e.extensions.code)).toEqual(['UNAVAILABLE']);
      expect(body.errors[0]!.message).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|fetch/);
    } finally {
      await down.close();
    }
  });

  it('needs AUTH_JWKS_URL for the other AUTH_ settings', async () => {
    await expect(startTestApp({ AUTH_ISSUER: ISSUER })).rejects.toThrow(/AUTH_ISSUER=.* needs AUTH_JWKS_URL/);
  });
});
