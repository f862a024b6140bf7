import { setMaxListeners } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Job } from './jobs.ts';
import type { ModelAnswer } from './model.ts';
import { WEBHOOK_USER_ID, type Signer } from './signing.ts';
import type { FalCounters, RedeliverOptions } from './types.ts';

/** fal gives each delivery attempt about 15 s. */
const ATTEMPT_TIMEOUT_MS = 15_000;

/** The shape a forged delivery claims: a success the signature does not cover. */
const FORGED_PAYLOAD = {
  video: { url: 'https://attacker.invalid/forged.mp4', content_type: 'video/mp4', file_name: 'forged.mp4', file_size: 1 },
};

/**
 * One signal stands for every delivery in flight (each adds its listener while it posts or waits
 * to retry): a thousand at once is a burst, not a leak, and Node's warning past 10 would say so.
 */
const unlimited = (controller: AbortController) => {
  setMaxListeners(0, controller.signal);
  return controller;
};

/**
 * Completion webhooks as fal sends them (PROTOCOL §7): signed JSON POSTs, retried on non-2xx and
 * network errors. Deliveries run in the background; reset() and close() abort them so a stale
 * delivery cannot bump the counters of a fresh run.
 */
export class WebhookSender {
  private aborter = unlimited(new AbortController());
  private pending = new Set<Promise<void>>();
  private readonly agents = deliveryAgents();

  constructor(
    private readonly signer: Signer,
    private readonly retry: { attempts: number; delayMs: number },
    private readonly counters: FalCounters,
  ) {}

  /** Starts delivering the webhook of a job the model has answered (`delayMs` late: a fault). */
  deliver(requestId: string, url: string, answer: ModelAnswer, delayMs = 0): void {
    const delivery = this.deliverWithRetries(requestId, url, answer, delayMs).finally(() => this.pending.delete(delivery));
    this.pending.add(delivery);
  }

  /** One more POST of a finished job's webhook, honest or deliberately broken; resolves with the receiver's status. */
  async redeliver(job: Job, options: RedeliverOptions = {}): Promise<number> {
    if (!job.webhookUrl) throw new Error(`request ${job.id} was submitted without a webhook URL`);
    if (!job.answer) throw new Error(`request ${job.id} has no result to deliver (status ${job.status}, outcome ${job.outcome ?? 'none'})`);
    return this.post(job.webhookUrl, job.id, job.answer, options, this.aborter.signal);
  }

  /** Stops every delivery in progress (used by reset). */
  abortAll(): void {
    this.aborter.abort();
    this.aborter = unlimited(new AbortController());
  }

  async close(): Promise<void> {
    this.abortAll();
    await Promise.allSettled(this.pending);
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private async deliverWithRetries(requestId: string, url: string, answer: ModelAnswer, lateMs: number): Promise<void> {
    const { signal } = this.aborter;
    const { attempts, delayMs } = this.retry;
    if (lateMs > 0) await sleep(lateMs, undefined, { signal }).catch(() => undefined);
    for (let attempt = 1; attempt <= attempts && !signal.aborted; attempt++) {
      this.counters.webhookAttempts++;
      const status = await this.post(url, requestId, answer, {}, signal).catch(() => 0);
      if (signal.aborted) return;
      if (status >= 200 && status < 300) {
        this.counters.webhooksDelivered++;
        return;
      }
      if (attempt < attempts) await sleep(delayMs, undefined, { signal }).catch(() => undefined);
    }
  }

  private async post(url: string, requestId: string, answer: ModelAnswer, options: RedeliverOptions, signal: AbortSignal): Promise<number> {
    const body = webhookBody(requestId, answer);
    const timestamp = String(Math.floor(Date.now() / 1000) + (options.timestampOffsetSec ?? 0));
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'x-fal-webhook-request-id': requestId,
      'x-fal-webhook-user-id': WEBHOOK_USER_ID,
      'x-fal-webhook-timestamp': timestamp,
    };
    if (!options.unsigned) {
      const signature = this.signer.sign(requestId, timestamp, body);
      headers['x-fal-webhook-signature'] = options.badSignature ? corrupt(signature) : signature;
    }
    const sent = options.tamperBody ? JSON.stringify({ ...JSON.parse(body), status: 'OK', payload: FORGED_PAYLOAD }) : body;
    return postJson(this.agents, url, headers, sent, AbortSignal.any([signal, AbortSignal.timeout(ATTEMPT_TIMEOUT_MS)]));
  }
}

/** An idle kept connection closes after this, before the usual 5 s of servers' keep-alive (Node's). */
const IDLE_CONNECTION_MS = 4_000;

/**
 * Kept-alive connections for deliveries, as fal's senders keep them. node:http rather than fetch:
 * a burst of a thousand completions is a thousand POSTs at once, and fetch's per-request machinery
 * (web streams, signals) made the emulator, not Segue, the busiest part of a benchmark's run.
 */
const deliveryAgents = () => ({
  http: new http.Agent({ keepAlive: true, timeout: IDLE_CONNECTION_MS }),
  https: new https.Agent({ keepAlive: true, timeout: IDLE_CONNECTION_MS }),
});

/** POSTs `body` and resolves with the status once the answer is read (so the connection can be reused). */
function postJson(agents: ReturnType<typeof deliveryAgents>, url: string, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<number> {
  const secure = url.startsWith('https:');
  return new Promise((resolve, reject) => {
    const request = (secure ? https : http).request(
      url,
      { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) }, agent: secure ? agents.https : agents.http, signal },
      (response) => {
        response.on('error', reject);
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.resume();
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

/** The raw webhook body. gateway_request_id differs from request_id only after fal's internal retries. */
function webhookBody(requestId: string, answer: ModelAnswer): string {
  const ids = { request_id: requestId, gateway_request_id: requestId };
  return JSON.stringify(
    answer.httpStatus < 300
      ? { ...ids, status: 'OK', payload: answer.body }
      : { ...ids, status: 'ERROR', error: `Invalid status code: ${answer.httpStatus}`, payload: answer.body },
  );
}

/** Flips the first byte: still 64 hex bytes, no longer a valid signature. */
function corrupt(signatureHex: string): string {
  const first = (parseInt(signatureHex.slice(0, 2), 16) ^ 0xff).toString(16).padStart(2, '0');
  return first + signatureHex.slice(2);
}
