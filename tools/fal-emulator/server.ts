import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { handleControl, type Controls } from './control-api.ts';
import type { Fixtures } from './fixtures.ts';
import { sendJson } from './http.ts';
import { clipDuration } from './model.ts';
import { handleQueue, type QueueContext } from './queue-api.ts';
import type { Signer } from './signing.ts';
import type { EmulatorSettings } from './types.ts';
import type { StorageEmulator } from './storage.ts';
import { readJson } from './http.ts';

export interface ServerContext extends QueueContext {
  storage: StorageEmulator;
  settings: EmulatorSettings;
  signer: Signer;
  fixtures: Fixtures;
  controls: Controls;
}

const QUEUE_HOST = 'queue.fal.run';
const REST_HOST = 'rest.fal.ai';
const FILE_PATH = /^\/files\/([^/]+)\/output\.mp4$/;

/**
 * Routing. A proxied client call carries the fal URL it meant in x-fal-target-url and may arrive
 * on any path, so that header wins. Without it the path is the emulator's own (JWKS, files,
 * controls) or a queue path left by a URL-rewriting middleware.
 */
export function createRequestListener(ctx: ServerContext): RequestListener {
  return (req, res) => {
    route(ctx, req, res).catch((error: unknown) => {
      if (res.headersSent) res.destroy();
      else sendJson(res, 500, { detail: `fal-emulator: ${(error as Error).message}` });
    });
  };
}

async function route(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const target = req.headers['x-fal-target-url'];
  if (typeof target === 'string') {
    const url = URL.canParse(target) ? new URL(target) : undefined;
    if (!url) return sendJson(res, 400, { detail: `Invalid x-fal-target-url: ${target}` });
    if (url.host === REST_HOST && url.pathname === '/storage/upload/initiate' && req.method === 'POST') {
      if (!authorized(ctx, req, res)) return;
      const body = await readJson(req);
      return ctx.storage.initiate(req, res, body.ok ? body.value : undefined);
    }
    if (url.host !== QUEUE_HOST) {
      return sendJson(res, 404, { detail: `fal-emulator emulates only ${QUEUE_HOST} and ${REST_HOST}'s storage upload, not ${url.host}${url.pathname}` });
    }
    return queue(ctx, req, res, url);
  }
  const url = new URL(req.url ?? '/', `https://${QUEUE_HOST}`);
  // Storage: the direct PUT of an upload's bytes, and the uploaded files.
  if (await ctx.storage.handlePut(req, res, url.pathname)) return;
  if (ctx.storage.serve(req, res, url.pathname)) return;
  if (url.pathname === '/.well-known/jwks.json') return sendJson(res, 200, ctx.signer.jwks());
  if (url.pathname.startsWith('/_emulator/')) return handleControl(ctx.controls, req, res, url.pathname);
  const file = FILE_PATH.exec(url.pathname);
  if (file && (req.method === 'GET' || req.method === 'HEAD')) return serveVideo(ctx, res, file[1] ?? '');
  return queue(ctx, req, res, url);
}

/** Only queue calls need a key: fal's file URLs and its JWKS are public. */
async function queue(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  if (!authorized(ctx, req, res)) return;
  return handleQueue(ctx, req, res, url);
}

function authorized(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): boolean {
  const { apiKey } = ctx.settings;
  if (apiKey !== null && req.headers.authorization !== `Key ${apiKey}`) {
    const detail = req.headers.authorization ? 'No user found for Key ID and Secret' : 'Missing authorization header';
    sendJson(res, 401, { detail });
    return false;
  }
  return true;
}

/** The output file of a succeeded job: the fixture clip of the duration it asked for (fal's CDN needs no key). */
function serveVideo(ctx: ServerContext, res: ServerResponse, requestId: string): void {
  const job = ctx.jobs.get(requestId);
  if (job?.outcome !== 'ok') return sendJson(res, 404, { detail: `No output file for ${requestId}` });
  const fault = ctx.faults.takeReply('file');
  if (fault && 'status' in fault) return sendJson(res, fault.status, { detail: `fal-emulator: injected ${fault.status}` });
  const video = ctx.fixtures[clipDuration(job.input)];
  res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': video.length });
  res.end(video);
}
