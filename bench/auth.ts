/**
 * What a credential costs per request: the same small query with no credential (the schema's
 * own `__typename`), an API key (one PostgreSQL read), a browser token (an HS256 check and one
 * read of its key) and an end user's JWT (an ES256 check against a cached JWKS and one read of
 * its account). Sequential requests over HTTP against the real API.
 * `npx tsx bench/auth.ts [requests=2000]`
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { accessTokens } from '../src/auth/access-tokens.ts';
import { createAccount } from '../src/domain/accounts.ts';
import { createTransitions } from '../src/domain/transitions.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { startApiServer } from '../src/http/server.ts';
import { createSegue } from '../src/runtime.ts';
import { benchConfig, ms, percentiles } from './lib.ts';

const requests = Number(process.argv[2] ?? 2000);

// The identity provider's key set, served locally.
const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
const jwk = { ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256' };
const jwks = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`;

const segue = createSegue(benchConfig({ AUTH_JWKS_URL: jwksUrl, AUTH_ISSUER: 'https://idp.bench/', AUTH_AUDIENCE: 'bench' }));
const api = await startApiServer(segue);
const { account, apiKey } = await createAccount(segue.db, 'bench-auth');
const { batch } = await createTransitions(segue, account.id, {
  transitions: [{ frontImageUrl: 'https://a.example/1.png', tailImageUrl: 'https://a.example/2.png', prompt: 'bench' }],
  generate: false,
}).then(async (r) => ({ batch: r.batch ?? (await segue.db.batch.create({ data: { accountId: account.id } })) }));
const key = await segue.db.apiKey.findFirstOrThrow({ where: { accountId: account.id } });
const { token } = await accessTokens({ db: segue.db, secret: segue.config.auth.tokenSecret }).sign({
  accountId: account.id,
  keyId: key.id,
  scope: { batchId: batch.id },
  expiresAt: new Date(Date.now() + 3_600_000),
});
const userJwt = await new SignJWT({ name: 'Bench user' })
  .setProtectedHeader({ alg: 'ES256', kid: 'bench' })
  .setSubject('bench-user')
  .setIssuer('https://idp.bench/')
  .setAudience('bench')
  .setExpirationTime('1h')
  .sign(privateKey);

const batchQuery = `{ batch(id: "${encodeId('Batch', batch.id)}") { id } }`;
const cases: Array<[string, string | null, string]> = [
  ['no credential ({ __typename })', null, '{ __typename }'],
  ['API key', apiKey, batchQuery],
  ['browser token', token, batchQuery],
  ['end user JWT (JWKS)', userJwt, '{ viewer { id } }'],
];

async function call(credential: string | null, query: string) {
  const started = performance.now();
  const response = await fetch(`${api.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(credential ? { authorization: `Bearer ${credential}` } : {}) },
    body: JSON.stringify({ query }),
  });
  const json = (await response.json()) as { errors?: unknown };
  if (json.errors) throw new Error(JSON.stringify(json.errors));
  return performance.now() - started;
}

console.log(`${requests} sequential requests per credential`);
for (const [name, credential, query] of cases) {
  for (let i = 0; i < 100; i++) await call(credential, query); // warm-up
  const samples: number[] = [];
  const started = performance.now();
  for (let i = 0; i < requests; i++) samples.push(await call(credential, query));
  const p = percentiles(samples);
  const rate = requests / ((performance.now() - started) / 1000);
  console.log(`  ${name.padEnd(32)} p50 ${ms(p.p50)}   p99 ${ms(p.p99)}   ${rate.toFixed(0)} req/s`);
}
await api.close();
await segue.close();
jwks.close();
