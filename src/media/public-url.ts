import { isIP } from 'node:net';
import { classifyAddress } from './ip-ranges.ts';

const LOCAL_SUFFIXES = ['.localhost', '.local', '.internal', '.lan', '.home.arpa'];

/**
 * Whether a base URL of Segue's (PUBLIC_URL, the media URL, an S3 endpoint) can be reached from
 * the internet, as fal's runners need: not localhost, not a private, loopback or link-local
 * address, not a single-label or local-only name. Names are not resolved: a public name is
 * taken at its word.
 */
export function isPublicBaseUrl(base: string | null | undefined): boolean {
  if (!base) return false;
  let host: string;
  try {
    host = new URL(base).hostname.replace(/^\[|\]$/g, '').toLowerCase();
  } catch {
    return false;
  }
  if (isIP(host)) return classifyAddress(host) === 'public';
  if (host === 'localhost' || !host.includes('.')) return false;
  return !LOCAL_SUFFIXES.some((suffix) => host.endsWith(suffix));
}
