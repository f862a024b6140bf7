import { createHash, createPublicKey, verify, type JsonWebKey } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiError, createFalClient, ValidationError } from '@fal-ai/client';
import { afterEach, describe, expect, it } from 'vitest';
import { startFalEmulator, type FalEmulator, type FalEmulatorOptions } from '../tools/fal-emulator/index.ts';

const ENDPOINT = 'fal-ai/kling-video/v2.1/pro/image-to-video';
const APP = 'fal-ai/kling-video';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function emulatorWith(options: FalEmulatorOptions = {}): Promise<FalEmulator> {
  const emulator = await startFalEmulator({ latencyMs: 100, ...options });
  cleanups.push(() => emulator.close());
  return emulator;
}

function falClient(emulator: FalEmulator, credentials = 'test-key') {
  return createFalClient({ credentials, proxyUrl: { url: emulator.url, when: 'always' } });
}

let inputs = 0;
/** A valid Kling input, different each time unless the caller says otherwise. */
function klingInput(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  inputs++;
  return { prompt: `a slow dissolve #${inputs}`, image_url: 'https://example.com/first.png', ...overrides };
}

/** A raw call as the client's proxy mode sends it: any path, the fal URL in x-fal-target-url. */
function rawCall(emulator: FalEmulator, method: string, falPath: string, body?: unknown): Promise<Response> {
  return fetch(`${emulator.url}/api/fal/proxy`, {
    method,
    headers: {
      'x-fal-target-url': `https://queue.fal.run/${falPath}`,
      authorization: 'Key test-key',
      'content-type': 'application/json',
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

async function until<T>(probe: () => T | Promise<T>, what: string, timeoutMs = 5_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function recordOf(emulator: FalEmulator, requestId: string) {
  const record = emulator.requests().find((r) => r.requestId === requestId);
  if (!record) throw new Error(`no record for ${requestId}`);
  return record;
}

const completed = (emulator: FalEmulator, requestId: string) =>
  until(() => recordOf(emulator, requestId).status === 'COMPLETED', `${requestId} to complete`);

async function rejection(promise: Promise<unknown>): Promise<ApiError<any>> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError<any>;
}

/** Duration from the MP4's mvhd box: proves the served file is a real clip of the asked length. */
function mp4DurationSec(mp4: Buffer): number {
  const at = mp4.indexOf('mvhd');
  if (mp4[at + 4] === 1) return Number(mp4.readBigUInt64BE(at + 28)) / mp4.readUInt32BE(at + 24);
  return mp4.readUInt32BE(at + 20) / mp4.readUInt32BE(at + 16);
}

describe('fal emulator: queue flow through the real @fal-ai/client', () => {
  it('reports queue positions that fall as capacity frees, then serves a playable MP4 result', async () => {
    const emulator = await emulatorWith({ latencyMs: 250, capacity: 1 });
    const fal = falClient(emulator);
    const first = await fal.queue.submit(ENDPOINT, { input: klingInput() });
    const second = await fal.queue.submit(ENDPOINT, { input: klingInput() });
    const third = await fal.queue.submit(ENDPOINT, { input: klingInput({ duration: '10' }) });
    expect(first).toMatchObject({
      status: 'IN_QUEUE',
      gateway_request_id: first.request_id,
      response_url: `https://queue.fal.run/${APP}/requests/${first.request_id}`,
      status_url: `https://queue.fal.run/${APP}/requests/${first.request_id}/status`,
      cancel_url: `https://queue.fal.run/${APP}/requests/${first.request_id}/cancel`,
    });
    expect(first.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect([first.queue_position, second.queue_position, third.queue_position]).toEqual([0, 0, 1]);

    const seen: string[] = [];
    await until(async () => {
      const status = await fal.queue.status(ENDPOINT, { requestId: third.request_id });
      const label = status.status === 'IN_QUEUE' ? `IN_QUEUE ${status.queue_position}` : status.status;
      if (seen.at(-1) !== label) seen.push(label);
      return status.status === 'COMPLETED';
    }, 'the third job to complete');
    expect(seen).toEqual(['IN_QUEUE 1', 'IN_QUEUE 0', 'IN_PROGRESS', 'COMPLETED']);

    const result = await fal.queue.result(ENDPOINT, { requestId: third.request_id });
    expect(result.requestId).toBe(third.request_id);
    expect(result.data.video).toMatchObject({
      url: `${emulator.url}/files/${third.request_id}/output.mp4`,
      content_type: 'video/mp4',
      file_name: 'output.mp4',
    });
    const video = await fetch(result.data.video.url);
    expect(video.status).toBe(200);
    expect(video.headers.get('content-type')).toBe('video/mp4');
    const bytes = Buffer.from(await video.arrayBuffer());
    expect(bytes.length).toBe(result.data.video.file_size);
    expect(bytes.subarray(4, 8).toString()).toBe('ftyp');
    expect(mp4DurationSec(bytes)).toBeCloseTo(10, 1);

    const five = await fal.queue.result(ENDPOINT, { requestId: first.request_id });
    const fiveBytes = Buffer.from(await (await fetch(five.data.video.url)).arrayBuffer());
    expect(mp4DurationSec(fiveBytes)).toBeCloseTo(5, 1);
    expect(emulator.counters()).toMatchObject({ submitted: 3, completed: 3, succeeded: 3, maxInProgress: 1, maxInFlight: 3 });
  });

  it('answers status 202 while waiting and 200 when done, with logs only on ?logs=1', async () => {
    const emulator = await emulatorWith({ latencyMs: 300 });
    const submitted = await rawCall(emulator, 'POST', ENDPOINT, klingInput());
    expect(submitted.status).toBe(200);
    const { request_id: id } = (await submitted.json()) as { request_id: string };

    const running = await rawCall(emulator, 'GET', `${APP}/requests/${id}/status?logs=0`);
    expect(running.status).toBe(202);
    expect(await running.json()).toMatchObject({ status: 'IN_PROGRESS', request_id: id, logs: null });
    const early = await rawCall(emulator, 'GET', `${APP}/requests/${id}`);
    expect(early.status).toBe(400);
    expect(await early.json()).toEqual({ detail: 'Request is still in progress' });

    await completed(emulator, id);
    const done = await rawCall(emulator, 'GET', `${APP}/requests/${id}/status?logs=1`);
    expect(done.status).toBe(200);
    const body = (await done.json()) as { logs: Array<{ level: string; message: string }>; metrics: { inference_time: number } };
    expect(body).toMatchObject({ status: 'COMPLETED', metrics: { inference_time: expect.any(Number) } });
    expect(body.logs.map((l) => l.level)).toEqual(['INFO', 'INFO']);

    const unknown = await rawCall(emulator, 'GET', `${APP}/requests/00000000-0000-0000-0000-000000000000/status`);
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('content-type')).toBe('application/json');
    // Keyed by owner/alias: the endpoint path must not be repeated in status URLs (PROTOCOL §2).
    const withPath = await rawCall(emulator, 'GET', `${ENDPOINT}/requests/${id}/status`);
    expect(withPath.status).toBe(404);
  });

  it('runs subscribe end to end, by polling and by the SSE status stream', async () => {
    const emulator = await emulatorWith({ latencyMs: 200, capacity: 1 });
    const fal = falClient(emulator);
    const blocker = await fal.queue.submit(ENDPOINT, { input: klingInput() });

    const enqueued: string[] = [];
    const polled: string[] = [];
    const polling = await fal.subscribe(ENDPOINT, {
      input: klingInput(),
      pollInterval: 10,
      onEnqueue: (id) => enqueued.push(id),
      onQueueUpdate: (status) => polled.push(status.status),
    });
    expect(polling.requestId).toBe(enqueued[0]);
    expect(polling.data.video.url).toContain(`/files/${polling.requestId}/output.mp4`);
    expect(polled).toContain('IN_PROGRESS');
    expect(polled.at(-1)).toBe('COMPLETED');

    await fal.queue.submit(ENDPOINT, { input: klingInput() });
    const streamed: string[] = [];
    const streaming = await fal.subscribe(ENDPOINT, {
      input: klingInput(),
      mode: 'streaming',
      onQueueUpdate: (status) => streamed.push(status.status === 'IN_QUEUE' ? `IN_QUEUE ${status.queue_position}` : status.status),
    });
    expect(streaming.data.video.content_type).toBe('video/mp4');
    expect(streamed).toEqual(['IN_QUEUE 0', 'IN_PROGRESS', 'COMPLETED']);
    expect(recordOf(emulator, blocker.request_id).outcome).toBe('ok');
  });

  it('completes at once with latency 0, still passing IN_PROGRESS', async () => {
    const emulator = await emulatorWith({ latencyMs: 0 });
    const fal = falClient(emulator);
    const { request_id: id } = await fal.queue.submit(ENDPOINT, { input: klingInput() });
    await completed(emulator, id);
    const record = recordOf(emulator, id);
    expect(record.startedAt).toBeGreaterThanOrEqual(record.submittedAt);
    expect(record.completedAt).toBeGreaterThanOrEqual(record.startedAt!);
    expect(record.outcome).toBe('ok');
  });

  it('also answers direct queue paths, as after a URL-rewriting middleware', async () => {
    const emulator = await emulatorWith({ latencyMs: 0 });
    const fal = createFalClient({
      credentials: 'test-key',
      requestMiddleware: async (request) => ({ ...request, url: request.url.replace('https://queue.fal.run', emulator.url) }),
    });
    const result = await fal.subscribe(ENDPOINT, { input: klingInput(), pollInterval: 10 });
    expect(result.data.video.file_size).toBeGreaterThan(0);
  });
});

describe('fal emulator: failed jobs', () => {
  it('accepts an invalid input, then fails it at run time with a 422 ValidationError', async () => {
    const emulator = await emulatorWith({ latencyMs: 20 });
    const fal = falClient(emulator);
    const { request_id: id } = await fal.queue.submit(ENDPOINT, { input: { prompt: 'no image', duration: '7' } });
    await completed(emulator, id);
    const status = await fal.queue.status(ENDPOINT, { requestId: id });
    expect(status).toMatchObject({ status: 'COMPLETED', error: expect.stringContaining('image_url'), error_type: 'validation_error' });

    const error = await rejection(fal.queue.result(ENDPOINT, { requestId: id }));
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.status).toBe(422);
    const validation = error as ValidationError;
    expect(validation.getFieldErrors('image_url')).toEqual([{ loc: ['body', 'image_url'], msg: 'Field required', type: 'missing' }]);
    expect(validation.getFieldErrors('duration')).toHaveLength(1);
    expect(emulator.counters()).toMatchObject({ submitted: 1, failed: 1, succeeded: 0 });
  });

  it('injects server and validation errors into the next matching jobs', async () => {
    const emulator = await emulatorWith({ latencyMs: 20 });
    const fal = falClient(emulator);
    emulator.inject({ on: 'job', error: 'validation', promptIncludes: 'forbidden' });
    emulator.inject({ on: 'job', error: 'server' });

    const crashed = await fal.queue.submit(ENDPOINT, { input: klingInput() });
    const rejected = await fal.queue.submit(ENDPOINT, { input: klingInput({ prompt: 'a forbidden scene' }) });
    const fine = await fal.queue.submit(ENDPOINT, { input: klingInput() });
    await Promise.all([crashed, rejected, fine].map((s) => completed(emulator, s.request_id)));

    const server = await rejection(fal.queue.result(ENDPOINT, { requestId: crashed.request_id }));
    expect(server).not.toBeInstanceOf(ValidationError);
    expect(server.status).toBe(500);
    expect(typeof server.body.detail).toBe('string');
    expect(server.requestId).toBe(crashed.request_id);

    const validation = await rejection(fal.queue.result(ENDPOINT, { requestId: rejected.request_id }));
    expect(validation).toBeInstanceOf(ValidationError);
    expect((validation as ValidationError).fieldErrors[0]).toMatchObject({ loc: ['body', 'image_url'], type: 'value_error' });

    await expect(fal.queue.result(ENDPOINT, { requestId: fine.request_id })).resolves.toMatchObject({ requestId: fine.request_id });
    expect(emulator.counters()).toMatchObject({ succeeded: 1, failed: 2 });
  });
});

describe('fal emulator: cancel', () => {
  it('removes a queued job, lets a running one complete, and refuses done or unknown ids', async () => {
    const emulator = await emulatorWith({ latencyMs: 400, capacity: 1 });
    const fal = falClient(emulator);
    const running = await fal.queue.submit(ENDPOINT, { input: klingInput() });
    const queued = await fal.queue.submit(ENDPOINT, { input: klingInput() });

    await fal.queue.cancel(ENDPOINT, { requestId: queued.request_id });
    expect(recordOf(emulator, queued.request_id)).toMatchObject({ status: 'COMPLETED', outcome: 'canceled' });
    expect(recordOf(emulator, queued.request_id).startedAt).toBeUndefined();
    const canceledResult = await rejection(fal.queue.result(ENDPOINT, { requestId: queued.request_id }));
    expect(canceledResult.status).toBe(400);
    expect(canceledResult.body).toEqual({ detail: 'Request was cancelled' });

    await fal.queue.cancel(ENDPOINT, { requestId: running.request_id });
    await completed(emulator, running.request_id);
    expect(recordOf(emulator, running.request_id).outcome).toBe('ok');

    const done = await rejection(fal.queue.cancel(ENDPOINT, { requestId: running.request_id }));
    expect([done.status, done.body]).toEqual([400, { status: 'ALREADY_COMPLETED' }]);
    const unknown = await rejection(fal.queue.cancel(ENDPOINT, { requestId: '00000000-0000-0000-0000-000000000000' }));
    expect([unknown.status, unknown.body]).toEqual([404, { status: 'NOT_FOUND' }]);
    expect(emulator.counters()).toMatchObject({ canceled: 1, succeeded: 1, cancelCalls: 4 });
  });

  it("stops a running job when cancelRunning is 'stop', and starts the next one", async () => {
    const emulator = await emulatorWith({ latencyMs: 5_000, capacity: 1, cancelRunning: 'stop' });
    const fal = falClient(emulator);
    const running = await fal.queue.submit(ENDPOINT, { input: klingInput() });
    const next = await fal.queue.submit(ENDPOINT, { input: klingInput() });
    await fal.queue.cancel(ENDPOINT, { requestId: running.request_id });
    expect(recordOf(emulator, running.request_id)).toMatchObject({ status: 'COMPLETED', outcome: 'canceled' });
    expect(recordOf(emulator, next.request_id).status).toBe('IN_PROGRESS');
    expect(emulator.counters()).toMatchObject({ canceled: 1, inProgress: 1, inQueue: 0 });
  });
});

describe('fal emulator: faults and counters', () => {
  it('rejects submits with injected 500 (at once) and 429 (with Retry-After, retried by the client)', async () => {
    const emulator = await emulatorWith();
    const fal = falClient(emulator);
    emulator.inject({ on: 'submit', status: 500 });
    const error = await rejection(fal.queue.submit(ENDPOINT, { input: klingInput() }));
    expect(error.status).toBe(500);
    expect(emulator.counters()).toMatchObject({ submitted: 0, rejectedSubmits: 1 });

    emulator.inject({ on: 'submit', status: 429, retryAfterSec: 7 });
    const limited = await rawCall(emulator, 'POST', ENDPOINT, klingInput());
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('7');

    emulator.inject({ on: 'submit', status: 429, retryAfterSec: 1 });
    await fal.queue.submit(ENDPOINT, { input: klingInput() });
    expect(emulator.counters()).toMatchObject({ submitted: 1, rejectedSubmits: 3 });
  });

  it('counts the double spend when a submit response is lost and the client re-sends it', async () => {
    const emulator = await emulatorWith();
    const fal = falClient(emulator);
    emulator.inject({ on: 'submit', dropResponse: true });
    const input = klingInput();
    const accepted = await fal.queue.submit(ENDPOINT, { input });
    const records = emulator.requests();
    expect(records).toHaveLength(2);
    expect(records.map((r) => r.input)).toEqual([input, input]);
    expect(records[1]?.requestId).toBe(accepted.request_id);
    expect(emulator.counters()).toMatchObject({ submitted: 2, duplicateInputs: 1, rejectedSubmits: 0 });

    // Key order does not hide a duplicate.
    await fal.queue.submit(ENDPOINT, { input: { image_url: input.image_url, prompt: input.prompt } });
    expect(emulator.counters().duplicateInputs).toBe(2);
  });

  it('answers status, result and cancel calls with injected errors', async () => {
    const emulator = await emulatorWith({ latencyMs: 0 });
    const fal = falClient(emulator);
    const { request_id: requestId } = await fal.queue.submit(ENDPOINT, { input: klingInput() });
    await completed(emulator, requestId);
    emulator.inject({ on: 'status', status: 400 });
    emulator.inject({ on: 'result', status: 500, times: 2 });
    emulator.inject({ on: 'cancel', status: 403 });
    expect((await rejection(fal.queue.status(ENDPOINT, { requestId }))).status).toBe(400);
    expect((await rejection(fal.queue.result(ENDPOINT, { requestId }))).status).toBe(500);
    expect((await rejection(fal.queue.result(ENDPOINT, { requestId }))).body).toEqual({ detail: expect.any(String) });
    expect((await rejection(fal.queue.cancel(ENDPOINT, { requestId }))).status).toBe(403);
    await expect(fal.queue.result(ENDPOINT, { requestId })).resolves.toMatchObject({ requestId });
    expect(emulator.counters()).toMatchObject({ statusCalls: 1, resultCalls: 3, cancelCalls: 1 });
  });

  it('keeps at most `capacity` jobs in progress, starting them in FIFO order', async () => {
    const emulator = await emulatorWith({ latencyMs: 250, capacity: 2 });
    const fal = falClient(emulator);
    const submitted = [];
    for (let i = 0; i < 6; i++) submitted.push(await fal.queue.submit(ENDPOINT, { input: klingInput() }));
    expect(emulator.counters()).toMatchObject({ inProgress: 2, inQueue: 4, inFlight: 6 });
    await until(() => emulator.counters().completed === 6, 'all jobs to complete');
    const records = emulator.requests();
    const starts = submitted.map((s) => records.find((r) => r.requestId === s.request_id)!.startedAt!);
    expect([...starts].sort((a, b) => a - b)).toEqual(starts);
    expect(emulator.counters()).toMatchObject({ maxInProgress: 2, maxInFlight: 6, inFlight: 0, succeeded: 6 });

    emulator.configure({ capacity: 1, latencyMs: 1_000 });
    await fal.queue.submit(ENDPOINT, { input: klingInput() });
    await fal.queue.submit(ENDPOINT, { input: klingInput() });
    expect(emulator.counters()).toMatchObject({ inProgress: 1, inQueue: 1 });
    emulator.configure({ capacity: 5 });
    expect(emulator.counters()).toMatchObject({ inProgress: 2, inQueue: 0 });
  });

  it('keeps thousands of jobs waiting with exact positions, then drains them quickly', async () => {
    const emulator = await emulatorWith({ latencyMs: 60_000, capacity: 1, cancelRunning: 'stop' });
    const started = Date.now();
    const total = 2_000;
    const ids: string[] = [];
    const worker = async () => {
      while (ids.length < total) {
        const index = ids.push('') - 1;
        const response = await rawCall(emulator, 'POST', ENDPOINT, klingInput());
        ids[index] = ((await response.json()) as { request_id: string }).request_id;
        expect((await rawCall(emulator, 'GET', `${APP}/requests/${ids[index]}/status`)).status).toBe(202);
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    expect(emulator.counters()).toMatchObject({ submitted: total, inProgress: 1, inQueue: total - 1, statusCalls: total });

    const positionOf = async (id: string) =>
      ((await (await rawCall(emulator, 'GET', `${APP}/requests/${id}/status`)).json()) as { queue_position?: number }).queue_position;
    const byArrival = emulator.requests().map((r) => r.requestId);
    expect(await positionOf(byArrival[total - 1]!)).toBe(total - 2);
    expect((await rawCall(emulator, 'PUT', `${APP}/requests/${byArrival[1000]}/cancel`)).status).toBe(202);
    expect(await positionOf(byArrival[total - 1]!)).toBe(total - 3);
    expect(await positionOf(byArrival[999]!)).toBe(998);

    emulator.configure({ latencyMs: 0, capacity: 50 });
    expect(emulator.counters()).toMatchObject({ inProgress: 50, maxInProgress: 50 });
    expect((await rawCall(emulator, 'PUT', `${APP}/requests/${byArrival[0]}/cancel`)).status).toBe(202);
    await until(() => emulator.counters().completed === total, 'every job to complete');
    expect(emulator.counters()).toMatchObject({ succeeded: total - 2, canceled: 2, inFlight: 0, maxInFlight: total });
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

type Delivery = { headers: IncomingHttpHeaders; body: string; verified: boolean };

/** A webhook receiver that checks fal's signature against the emulator's JWKS, as Segue must. */
async function startReceiver(emulator: FalEmulator, failFirst = 0) {
  const jwks = (await (await fetch(emulator.jwksUrl)).json()) as { keys: JsonWebKey[] };
  expect(jwks.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', x: expect.any(String) });
  const key = createPublicKey({ key: jwks.keys[0]!, format: 'jwk' });
  const verifies = (headers: IncomingHttpHeaders, body: string) => {
    const signature = headers['x-fal-webhook-signature'];
    const timestamp = Number(headers['x-fal-webhook-timestamp']);
    if (typeof signature !== 'string' || Math.abs(Date.now() / 1000 - timestamp) > 300) return false;
    const message = [
      headers['x-fal-webhook-request-id'],
      headers['x-fal-webhook-user-id'],
      headers['x-fal-webhook-timestamp'],
      createHash('sha256').update(body).digest('hex'),
    ].join('\n');
    return verify(null, Buffer.from(message), key, Buffer.from(signature, 'hex'));
  };
  const deliveries: Delivery[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const verified = verifies(req.headers, body);
      deliveries.push({ headers: req.headers, body, verified });
      res.statusCode = deliveries.length <= failFirst ? 503 : verified ? 200 : 401;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/fal`, deliveries };
}

describe('fal emulator: webhooks', () => {
  it('POSTs signed OK and ERROR webhooks that verify against the served JWKS', async () => {
    const emulator = await emulatorWith({ latencyMs: 20 });
    const receiver = await startReceiver(emulator);
    const fal = falClient(emulator);
    const ok = await fal.queue.submit(ENDPOINT, { input: klingInput(), webhookUrl: receiver.url });
    const bad = await fal.queue.submit(ENDPOINT, { input: { prompt: 'no image' }, webhookUrl: receiver.url });
    // The receiver records a delivery before the emulator reads its answer: wait for the emulator.
    await until(() => emulator.counters().webhooksDelivered === 2, 'two webhooks');
    expect(recordOf(emulator, ok.request_id).webhookUrl).toBe(receiver.url);

    const byId = (id: string) => receiver.deliveries.find((d) => d.headers['x-fal-webhook-request-id'] === id)!;
    expect(byId(ok.request_id).verified).toBe(true);
    expect(JSON.parse(byId(ok.request_id).body)).toEqual({
      request_id: ok.request_id,
      gateway_request_id: ok.request_id,
      status: 'OK',
      payload: { video: expect.objectContaining({ url: `${emulator.url}/files/${ok.request_id}/output.mp4` }) },
    });
    expect(byId(bad.request_id).verified).toBe(true);
    expect(JSON.parse(byId(bad.request_id).body)).toMatchObject({
      request_id: bad.request_id,
      status: 'ERROR',
      error: 'Invalid status code: 422',
      payload: { detail: [{ loc: ['body', 'image_url'], type: 'missing' }] },
    });
    expect(emulator.counters()).toMatchObject({ webhookAttempts: 2, webhooksDelivered: 2 });
  });

  it('retries a delivery the receiver refused', async () => {
    const emulator = await emulatorWith({ latencyMs: 0, webhookRetry: { attempts: 3, delayMs: 20 } });
    const receiver = await startReceiver(emulator, 2);
    await falClient(emulator).queue.submit(ENDPOINT, { input: klingInput(), webhookUrl: receiver.url });
    await until(() => emulator.counters().webhooksDelivered === 1, 'the third attempt to land');
    expect(emulator.counters().webhookAttempts).toBe(3);
    expect(new Set(receiver.deliveries.map((d) => d.body)).size).toBe(1);
  });

  it('redelivers the same payload, or forged variants that fail verification', async () => {
    const emulator = await emulatorWith({ latencyMs: 0 });
    const receiver = await startReceiver(emulator);
    const { request_id: id } = await falClient(emulator).queue.submit(ENDPOINT, { input: klingInput(), webhookUrl: receiver.url });
    await until(() => emulator.counters().webhooksDelivered === 1, 'the first webhook');

    expect(await emulator.redeliverWebhook(id)).toBe(200);
    expect(receiver.deliveries[1]?.body).toBe(receiver.deliveries[0]?.body);
    expect(await emulator.redeliverWebhook(id, { tamperBody: true })).toBe(401);
    expect(JSON.parse(receiver.deliveries[2]!.body).payload.video.url).not.toContain(emulator.url);
    expect(await emulator.redeliverWebhook(id, { badSignature: true })).toBe(401);
    expect(await emulator.redeliverWebhook(id, { unsigned: true })).toBe(401);
    expect(receiver.deliveries[4]?.headers['x-fal-webhook-signature']).toBeUndefined();
    expect(await emulator.redeliverWebhook(id, { timestampOffsetSec: -600 })).toBe(401);
    expect(emulator.counters()).toMatchObject({ webhookAttempts: 1, webhooksDelivered: 1 });
  });
});

describe('fal emulator: access and control', () => {
  it('answers 401 to queue calls without the configured key, but serves files and JWKS openly', async () => {
    const emulator = await emulatorWith({ latencyMs: 0, apiKey: 'the-key' });
    const denied = await rejection(falClient(emulator, 'wrong-key').queue.submit(ENDPOINT, { input: klingInput() }));
    expect(denied.status).toBe(401);
    expect(denied.body).toEqual({ detail: expect.any(String) });
    expect(emulator.counters().submitted).toBe(0);

    const result = await falClient(emulator, 'the-key').subscribe(ENDPOINT, { input: klingInput(), pollInterval: 10 });
    expect((await fetch(result.data.video.url)).status).toBe(200);
    expect((await fetch(emulator.jwksUrl)).status).toBe(200);
    emulator.configure({ apiKey: null });
    await expect(falClient(emulator, 'anything').queue.submit(ENDPOINT, { input: klingInput() })).resolves.toBeDefined();
  });

  it('exposes counters, requests, faults, config and reset over HTTP', async () => {
    const emulator = await emulatorWith({ latencyMs: 5_000 });
    const control = (method: string, path: string, body?: unknown) =>
      fetch(`${emulator.url}/_emulator/${path}`, { method, ...(body !== undefined && { body: JSON.stringify(body) }) });
    const fal = falClient(emulator);

    expect((await control('POST', 'config', { capacity: 1 })).status).toBe(200);
    await fal.queue.submit(ENDPOINT, { input: klingInput() });
    await fal.queue.submit(ENDPOINT, { input: klingInput() });
    expect(await (await control('GET', 'counters')).json()).toMatchObject({ submitted: 2, inProgress: 1, inQueue: 1 });
    const requests = (await (await control('GET', 'requests')).json()) as Array<{ status: string }>;
    expect(requests.map((r) => r.status)).toEqual(['IN_PROGRESS', 'IN_QUEUE']);
    expect((await control('POST', 'config', { capacity: null })).status).toBe(200);
    expect(emulator.counters()).toMatchObject({ inProgress: 2, inQueue: 0 });

    expect((await control('POST', 'faults', { on: 'submit', status: 500, times: null })).status).toBe(200);
    for (let i = 0; i < 3; i++) expect((await rejection(fal.queue.submit(ENDPOINT, { input: klingInput() }))).status).toBe(500);
    expect((await control('DELETE', 'faults')).status).toBe(200);
    await fal.queue.submit(ENDPOINT, { input: klingInput() });
    expect(emulator.counters()).toMatchObject({ submitted: 3, rejectedSubmits: 3 });

    expect((await control('POST', 'config', { latencyMs: -1 })).status).toBe(400);
    expect((await control('POST', 'config', { webhookRetry: { attempts: 1, delayMs: 0 } })).status).toBe(400);
    expect((await control('POST', 'faults', { on: 'status' })).status).toBe(400);
    expect((await control('POST', 'reset')).status).toBe(200);
    expect(emulator.requests()).toEqual([]);
    expect(emulator.counters()).toMatchObject({ submitted: 0, inFlight: 0, rejectedSubmits: 0 });
  });
});
