import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FaultBook } from './faults.ts';
import { readJson, sendJson } from './http.ts';
import type { JobQueue } from './jobs.ts';
import { requestUrls, statusBody } from './status-body.ts';
import type { StatusStreams } from './status-stream.ts';
import type { FalCounters } from './types.ts';

export interface QueueContext {
  jobs: JobQueue;
  faults: FaultBook;
  counters: FalCounters;
  streams: StatusStreams;
}

/** `[workflows|comfy/]owner/alias/requests/<id>[/status[/stream]|/cancel]`, as the client builds them (PROTOCOL §2). */
const REQUEST_PATH = /^\/((?:(?:workflows|comfy)\/)?[^/]+\/[^/]+)\/requests\/([^/]+)(\/status|\/status\/stream|\/cancel)?\/?$/;

/** Answers a queue.fal.run call; `url` is the fal URL the client meant (from x-fal-target-url or the path). */
export async function handleQueue(ctx: QueueContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const match = REQUEST_PATH.exec(url.pathname);
  const method = req.method ?? 'GET';
  if (match) {
    const [, appPath = '', requestId = '', action = ''] = match;
    if (method === 'GET' && action === '') return result(ctx, res, appPath, requestId);
    if (method === 'GET' && action === '/status') return status(ctx, res, appPath, requestId, url, false);
    if (method === 'GET' && action === '/status/stream') return status(ctx, res, appPath, requestId, url, true);
    if ((method === 'PUT' || method === 'POST') && action === '/cancel') return cancel(ctx, res, appPath, requestId);
  } else if (method === 'POST') {
    const endpointId = url.pathname.replace(/^\/+|\/+$/g, '');
    const appPath = appPathOf(endpointId);
    if (appPath) return submit(ctx, req, res, endpointId, appPath, url);
  }
  sendJson(res, 404, { detail: `No queue route for ${method} ${url.pathname}` });
}

/** The owner/alias part of an endpoint id (namespaced ids keep their namespace), or undefined if malformed. */
function appPathOf(endpointId: string): string | undefined {
  const parts = endpointId.split('/');
  const width = parts[0] === 'workflows' || parts[0] === 'comfy' ? 3 : 2;
  return parts.length >= width && parts.every(Boolean) ? parts.slice(0, width).join('/') : undefined;
}

/**
 * Accepts any input: fal's queue does not check the schema at submit, the job fails later (422)
 * when it runs. A dropResponse fault accepts the job and then kills the socket, so the client
 * retries and pays twice: the case Segue has to survive.
 */
async function submit(ctx: QueueContext, req: IncomingMessage, res: ServerResponse, endpointId: string, appPath: string, url: URL): Promise<void> {
  const body = await readJson(req);
  const fault = ctx.faults.takeSubmit();
  if (fault && 'status' in fault) {
    ctx.counters.rejectedSubmits++;
    const retryAfter = fault.status === 429 && fault.retryAfterSec !== undefined ? { 'retry-after': String(fault.retryAfterSec) } : undefined;
    return sendJson(res, fault.status, { detail: injectedDetail(fault.status) }, retryAfter);
  }
  if (!body.ok) {
    return sendJson(res, 422, { detail: [{ loc: ['body'], msg: `Invalid JSON: ${body.error}`, type: 'json_invalid' }] });
  }
  const input = body.value ?? {};
  const { job, queuePosition } = ctx.jobs.submit({
    endpointId,
    appPath,
    input,
    webhookUrl: url.searchParams.get('fal_webhook') ?? undefined,
    injectedError: ctx.faults.takeJob(input),
  });
  if (fault && 'dropResponse' in fault) {
    req.socket.destroy();
    return;
  }
  if (fault && 'cutBody' in fault) {
    const text = JSON.stringify({ status: 'IN_QUEUE', request_id: job.id, gateway_request_id: job.id, ...requestUrls(job) });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-fal-request-id': job.id });
    res.write(text.slice(0, text.length >> 1), () => setTimeout(() => req.socket.destroy(), 20));
    return;
  }
  const answer = () =>
    sendJson(
      res,
      200,
      { status: 'IN_QUEUE', request_id: job.id, gateway_request_id: job.id, ...requestUrls(job), queue_position: queuePosition },
      { 'x-fal-request-id': job.id },
    );
  // The job exists (and runs) from now on; only its answer is late, as on a congested network.
  if (fault && 'delayMs' in fault) setTimeout(answer, fault.delayMs).unref();
  else answer();
}

/** 202 while the job waits or runs, 200 once COMPLETED (fal's docs; the client accepts any 2xx). */
function status(ctx: QueueContext, res: ServerResponse, appPath: string, requestId: string, url: URL, stream: boolean): void {
  ctx.counters.statusCalls++;
  if (replyFault(ctx, res, 'status', requestId)) return;
  const job = findJob(ctx, appPath, requestId);
  if (!job) return sendJson(res, 404, { detail: `Request ${requestId} not found` });
  const withLogs = url.searchParams.get('logs') === '1';
  if (stream) return ctx.streams.serve(res, job, withLogs, ctx.faults.takeStream());
  sendJson(res, job.status === 'COMPLETED' ? 200 : 202, statusBody(ctx.jobs, job, withLogs));
}

/** The model's answer, replayed with its own status (a failed job answers 422 or 500, not 200). */
function result(ctx: QueueContext, res: ServerResponse, appPath: string, requestId: string): void {
  ctx.counters.resultCalls++;
  if (replyFault(ctx, res, 'result', requestId)) return;
  const job = findJob(ctx, appPath, requestId);
  if (!job) return sendJson(res, 404, { detail: `Request ${requestId} not found` });
  const headers = { 'x-fal-request-id': job.id };
  if (job.outcome === 'canceled') return sendJson(res, 400, { detail: 'Request was cancelled' }, headers);
  if (!job.answer) return sendJson(res, 400, { detail: 'Request is still in progress' }, headers);
  // Platform errors also name their type in a header (PROTOCOL §4); model 422s do not.
  const { httpStatus, body, error } = job.answer;
  sendJson(res, httpStatus, body, httpStatus >= 500 && error ? { ...headers, 'x-fal-error-type': error.type } : headers);
}

function cancel(ctx: QueueContext, res: ServerResponse, appPath: string, requestId: string): void {
  ctx.counters.cancelCalls++;
  if (replyFault(ctx, res, 'cancel', requestId)) return;
  const job = findJob(ctx, appPath, requestId);
  if (!job) return sendJson(res, 404, { status: 'NOT_FOUND' });
  if (ctx.jobs.cancel(job) === 'already_completed') return sendJson(res, 400, { status: 'ALREADY_COMPLETED' });
  sendJson(res, 202, { status: 'CANCELLATION_REQUESTED' });
}

/** A request is found only under its own owner/alias, as on fal: a URL with the wrong app 404s. */
function findJob(ctx: QueueContext, appPath: string, requestId: string) {
  const job = ctx.jobs.get(requestId);
  return job && job.appPath === appPath ? job : undefined;
}

/** Connections that have carried a status, result or cancel call: a later one on them is a reuse. */
const servedBefore = new WeakSet<object>();

/**
 * Answers a call with its injected fault, if one is armed: an error status (without
 * x-fal-request-id, as a gateway or load balancer answers), silence until the client gives up, or
 * an answer that stops halfway.
 */
function replyFault(ctx: QueueContext, res: ServerResponse, on: 'status' | 'result' | 'cancel', requestId: string): boolean {
  const fault = ctx.faults.takeReply(on, servedBefore.has(res.req.socket));
  servedBefore.add(res.req.socket);
  if (!fault) return false;
  if ('hang' in fault) {
    ctx.counters.hungCalls++;
    return true;
  }
  if ('resetReused' in fault) {
    ctx.counters.connectionsReset++;
    res.req.socket.destroy();
    return true;
  }
  if ('stallBody' in fault) {
    ctx.counters.hungCalls++;
    const text = JSON.stringify({ status: 'IN_PROGRESS', request_id: requestId });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-fal-request-id': requestId });
    res.write(text.slice(0, text.length >> 1));
    return true;
  }
  if ('malformed' in fault) {
    sendJson(res, 200, { detail: 'not an output (fal-emulator fault)' }, { 'x-fal-request-id': requestId });
    return true;
  }
  sendJson(res, fault.status, { detail: injectedDetail(fault.status) }, {
    ...('withRequestId' in fault && fault.withRequestId ? { 'x-fal-request-id': requestId } : {}),
    ...(fault.status === 429 && 'retryAfterSec' in fault && fault.retryAfterSec !== undefined ? { 'retry-after': String(fault.retryAfterSec) } : {}),
  });
  return true;
}

function injectedDetail(status: number): string {
  return `Injected HTTP ${status} (fal-emulator fault)`;
}
