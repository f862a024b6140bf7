import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signed, expiring URLs for what Segue serves itself: private media files (images of an account)
 * and direct-upload targets of the local storage driver. The signature is an HMAC-SHA256 over the
 * purpose, the resource and the expiry, so a URL cannot be stretched in time or moved to another file.
 */
export type SignedPurpose = 'read' | 'upload';

const HOUR = 3600;

/**
 * An expiry at least `minSeconds` from now, rounded up to the hour: the same URL comes out for an
 * hour, so what a subscriber sees equals what a query returns, and browsers can cache it.
 */
export function roundedExpiry(minSeconds: number, now = Date.now()): Date {
  const seconds = Math.ceil((now / 1000 + minSeconds) / HOUR) * HOUR;
  return new Date(seconds * 1000);
}

const mac = (secret: string, purpose: SignedPurpose, resource: string, expires: number) =>
  createHmac('sha256', secret).update(`${purpose}\n${resource}\n${expires}`).digest('base64url');

/** `expires` (unix seconds) and `signature` query parameters for a resource. */
export function signResource(secret: string, purpose: SignedPurpose, resource: string, expiresAt: Date): URLSearchParams {
  const expires = Math.floor(expiresAt.getTime() / 1000);
  return new URLSearchParams({ expires: String(expires), signature: mac(secret, purpose, resource, expires) });
}

export type SignatureCheck = 'ok' | 'expired' | 'invalid';

export function verifyResource(secret: string, purpose: SignedPurpose, resource: string, params: URLSearchParams, now = Date.now()): SignatureCheck {
  const expires = Number(params.get('expires'));
  const signature = params.get('signature') ?? '';
  if (!Number.isInteger(expires) || !signature) return 'invalid';
  const expected = Buffer.from(mac(secret, purpose, resource, expires));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return 'invalid';
  return expires * 1000 < now ? 'expired' : 'ok';
}
