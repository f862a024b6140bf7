import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';

/** The user id fal puts in X-Fal-Webhook-User-Id; the emulator has a single fixed user. */
export const WEBHOOK_USER_ID = 'fal-emulator-user';

export interface Signer {
  /** Body of GET /.well-known/jwks.json. */
  jwks(): { keys: JsonWebKey[] };
  /** Hex ED25519 signature over fal's webhook message (PROTOCOL §7). */
  sign(requestId: string, timestamp: string, rawBody: string): string;
}

/** A fresh ED25519 key pair per emulator: receivers must fetch the JWKS, as with fal. */
export function createSigner(): Signer {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const { kty, crv, x } = publicKey.export({ format: 'jwk' });
  return {
    jwks: () => ({ keys: [{ kty, crv, x }] }),
    sign: (requestId, timestamp, rawBody) => sign(null, Buffer.from(webhookMessage(requestId, timestamp, rawBody)), privateKey).toString('hex'),
  };
}

/** request_id \n user_id \n timestamp \n hex(sha256(raw body)), as fal signs it. */
function webhookMessage(requestId: string, timestamp: string, rawBody: string): string {
  const bodyHash = createHash('sha256').update(rawBody).digest('hex');
  return [requestId, WEBHOOK_USER_ID, timestamp, bodyHash].join('\n');
}
