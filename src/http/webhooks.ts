import type { IncomingMessage, ServerResponse } from 'node:http';
import { copyLateResult } from '../domain/fal-requests.ts';
import { applyProviderCallback } from '../domain/provider-callbacks.ts';
import { FalWebhookVerifier, submissionOf } from '../providers/fal-webhook.ts';
import type { Segue } from '../runtime.ts';

const MAX_BODY = 1024 * 1024;

export class BodyTooLarge extends Error {}

export async function readBody(req: IncomingMessage, limit = MAX_BODY): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new BodyTooLarge(`Body over ${limit} bytes.`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

const json = (res: ServerResponse, status: number, body: unknown) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));

/**
 * POST /webhooks/fal: fal's completion callback. Only a correctly signed, fresh call is read;
 * anything else is 401 and changes nothing. fal re-delivers (up to 10 times over 2 hours), so
 * handling is idempotent per request id and answers 200 to a repeat.
 */
export function falWebhookHandler(segue: Segue) {
  const verifier = new FalWebhookVerifier(segue.config.fal.jwksUrl);
  const log = segue.logger.child({ component: 'webhooks' });
  return async (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST') return json(res, 405, { error: 'POST only' });
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch {
      return json(res, 413, { error: 'body too large' });
    }
    const header = (name: string) => {
      const value = req.headers[name];
      return (Array.isArray(value) ? value[0] : value) ?? null;
    };
    let verified = false;
    try {
      verified = await verifier.verify(
        {
          requestId: header('x-fal-webhook-request-id'),
          userId: header('x-fal-webhook-user-id'),
          timestamp: header('x-fal-webhook-timestamp'),
          signature: header('x-fal-webhook-signature'),
        },
        body,
      );
    } catch (err) {
      log.error({ err }, 'could not load fal JWKS to verify a webhook');
      return json(res, 503, { error: 'cannot verify now' });
    }
    if (!verified) {
      log.warn({ requestId: header('x-fal-webhook-request-id') }, 'rejected an unsigned, forged or stale webhook');
      return json(res, 401, { error: 'invalid signature' });
    }
    let event: { request_id?: unknown; status?: unknown; payload?: { video?: { url?: unknown } } | null };
    try {
      event = JSON.parse(body.toString('utf8'));
    } catch {
      return json(res, 400, { error: 'body is not JSON' });
    }
    const requestId = typeof event.request_id === 'string' ? event.request_id : header('x-fal-webhook-request-id')!;
    if (requestId !== header('x-fal-webhook-request-id')) return json(res, 401, { error: 'request id mismatch' });

    const submission = submissionOf(segue.config, new URL(req.url ?? '/', 'http://local').searchParams);
    const videoUrl = event.payload?.video?.url;
    try {
      const outcome = await applyProviderCallback(
        {
          db: segue.db,
          sql: segue.sql,
          events: segue.events,
          metrics: segue.metrics,
          wakeRun: (ref) => segue.generationJobs.wake(ref.id, ref.run),
          copyLate: (row) => copyLateResult(segue, row, log),
          requestEnded: (ended) =>
            segue.events.requestEnded(ended).catch((err: unknown) => {
              log.warn({ err, falRequestId: ended.requestId }, 'could not tell the worker fal ended the request; it finds out at its next poll');
            }),
        },
        { requestId, ok: event.status === 'OK', videoUrl: typeof videoUrl === 'string' ? videoUrl : null, submission },
      );
      log.info({ falRequestId: requestId, transitionId: submission?.transitionId, outcome }, 'fal webhook');
      return json(res, 200, { ok: true, outcome });
    } catch (err) {
      log.error({ err, falRequestId: requestId }, 'fal webhook failed');
      // Non-2xx: fal delivers it again later.
      return json(res, 500, { error: 'internal' });
    }
  };
}
