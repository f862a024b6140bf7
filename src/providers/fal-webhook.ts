import { createHash, createHmac, createPublicKey, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import type { Config } from '../config.ts';

/**
 * fal's webhooks (PROTOCOL.md §7): ED25519 over
 * `request_id \n user_id \n timestamp \n hex(sha256(raw body))`, checked against any key of fal's
 * JWKS, with the timestamp within ±5 minutes.
 */
export const WEBHOOK_PATH = '/webhooks/fal';
const MAX_SKEW_SECONDS = 5 * 60;
const JWKS_TTL_MS = 24 * 3600 * 1000;

/**
 * Each submit's webhook URL names its transition, run and attempt, with an HMAC over all three so
 * nobody else's fal request (fal signs every customer's webhooks with the same keys) can claim one
 * of ours, and no request of one run can be taken for another run's.
 */
export interface WebhookSubmission {
  transitionId: string;
  run: number;
  attempt: number;
}

function tokenSecret(config: Config) {
  return createHash('sha256').update(`segue-webhook:${config.fal.key ?? ''}:${config.databaseUrl}`).digest();
}

export function webhookToken(config: Config, s: WebhookSubmission) {
  return createHmac('sha256', tokenSecret(config)).update(`${s.transitionId}:r${s.run}:a${s.attempt}`).digest('base64url');
}

export function webhookUrl(config: Config, s: WebhookSubmission): string | undefined {
  if (!config.publicUrl) return undefined;
  const url = new URL(`${config.publicUrl}${WEBHOOK_PATH}`);
  url.searchParams.set('transition', s.transitionId);
  url.searchParams.set('run', String(s.run));
  url.searchParams.set('attempt', String(s.attempt));
  url.searchParams.set('token', webhookToken(config, s));
  return url.toString();
}

/** The submission a webhook URL names, when its token is ours; null otherwise. */
export function submissionOf(config: Config, params: URLSearchParams): WebhookSubmission | null {
  const transitionId = params.get('transition');
  const run = Number(params.get('run'));
  const attempt = Number(params.get('attempt'));
  const token = params.get('token') ?? '';
  if (!transitionId || !Number.isInteger(run) || !Number.isInteger(attempt)) return null;
  const submission = { transitionId, run, attempt };
  const expected = Buffer.from(webhookToken(config, submission));
  const given = Buffer.from(token);
  return expected.length === given.length && timingSafeEqual(expected, given) ? submission : null;
}

export interface WebhookHeaders {
  requestId: string | null;
  userId: string | null;
  timestamp: string | null;
  signature: string | null;
}

/** Caches fal's JWKS (≤ 24 h) and verifies signatures against every key in it. */
export class FalWebhookVerifier {
  private keys: KeyObject[] = [];
  private fetchedAt = 0;
  private loading: Promise<void> | null = null;

  constructor(
    private readonly jwksUrl: string,
    private readonly now: () => number = Date.now,
  ) {}

  private async load(force = false) {
    if (!force && this.keys.length && this.now() - this.fetchedAt < JWKS_TTL_MS) return;
    this.loading ??= (async () => {
      try {
        const response = await fetch(this.jwksUrl, { signal: AbortSignal.timeout(10_000) });
        if (!response.ok) throw new Error(`JWKS answered ${response.status}`);
        const body = (await response.json()) as { keys?: Array<Record<string, unknown>> };
        this.keys = (body.keys ?? [])
          .filter((k) => k.kty === 'OKP' && k.crv === 'Ed25519' && typeof k.x === 'string')
          .map((k) => createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: k.x as string }, format: 'jwk' }));
        this.fetchedAt = this.now();
      } finally {
        this.loading = null;
      }
    })();
    await this.loading;
  }

  /** True only for a fresh, correctly signed body. */
  async verify(headers: WebhookHeaders, rawBody: Buffer): Promise<boolean> {
    const { requestId, userId, timestamp, signature } = headers;
    if (!requestId || !userId || !timestamp || !signature || !/^\d+$/.test(timestamp) || !/^[0-9a-f]+$/i.test(signature)) {
      return false;
    }
    if (Math.abs(this.now() / 1000 - Number(timestamp)) > MAX_SKEW_SECONDS) return false;
    const digest = createHash('sha256').update(rawBody).digest('hex');
    const message = Buffer.from(`${requestId}\n${userId}\n${timestamp}\n${digest}`, 'utf8');
    const sig = Buffer.from(signature, 'hex');
    await this.load();
    if (this.keys.some((key) => verify(null, message, key, sig))) return true;
    // fal may have rotated its keys since we cached them: look once more.
    if (this.now() - this.fetchedAt > 60_000) {
      await this.load(true);
      return this.keys.some((key) => verify(null, message, key, sig));
    }
    return false;
  }
}
