import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { HonoAdapter } from '@bull-board/hono';
import { getRequestListener } from '@hono/node-server';
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono } from 'hono';
import type { Segue } from '../runtime.ts';

export const ADMIN_PATH = '/admin/queues';

const same = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/** `Authorization: Bearer <token>`, or Basic auth with the token as password (so a browser can log in). */
export function adminAuthorized(header: string | undefined, token: string): boolean {
  if (!header) return false;
  const bearer = /^Bearer\s+(\S+)$/i.exec(header);
  if (bearer) return same(bearer[1]!, token);
  const basic = /^Basic\s+(\S+)$/i.exec(header);
  if (!basic) return false;
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  return same(decoded.slice(decoded.indexOf(':') + 1), token);
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * A browser caches Basic credentials and sends them with any request to this origin, including
 * one a page on another site makes: a state-changing request is accepted only from this site
 * itself (its Origin is this host, or PUBLIC_URL's origin). Requests without Origin and
 * Sec-Fetch-Site (curl, scripts) are not a browser replaying credentials, and pass.
 */
export function crossSiteWrite(request: { method: string; origin?: string | undefined; host?: string | undefined; fetchSite?: string | undefined }, publicUrl: string | null): boolean {
  if (SAFE_METHODS.has(request.method.toUpperCase())) return false;
  if (request.fetchSite && request.fetchSite !== 'same-origin' && request.fetchSite !== 'none') return true;
  if (request.origin === undefined) return false;
  let origin: URL;
  try {
    origin = new URL(request.origin);
  } catch {
    return true; // "null" (sandboxed frames, some redirects) or garbage
  }
  if (request.host && origin.host === request.host.toLowerCase()) return false;
  if (publicUrl && origin.origin === new URL(publicUrl).origin) return false;
  return true;
}

/**
 * Bull Board (the Flower of this stack) at /admin/queues: queue depths, jobs, retry and clean of
 * failed jobs. Only when ADMIN_TOKEN is set; otherwise the path does not exist.
 */
export function adminHandler(segue: Segue) {
  const token = segue.config.http.adminToken;
  if (!token) return null;
  const adapter = new HonoAdapter(serveStatic).setBasePath(ADMIN_PATH);
  createBullBoard({
    queues: [segue.generationJobs.queue, segue.copyJobs.queue, segue.mediaJobs.queue].map(
      (queue) => new BullMQAdapter(queue, { readOnlyMode: false, allowRetries: true }),
    ),
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: 'Segue queues' } },
  });
  const app = new Hono();
  app.use('*', async (c, next) => {
    const request = {
      method: c.req.method,
      origin: c.req.header('origin'),
      host: c.req.header('host'),
      fetchSite: c.req.header('sec-fetch-site'),
    };
    if (crossSiteWrite(request, segue.config.publicUrl)) return c.json({ error: 'cross-site request refused' }, 403);
    return next();
  });
  app.use(`${ADMIN_PATH}/*`, async (c, next) => {
    if (!adminAuthorized(c.req.header('authorization'), token)) {
      return c.json({ error: 'admin token required' }, 401, { 'www-authenticate': 'Basic realm="Segue admin", charset="UTF-8"' });
    }
    return next();
  });
  app.use(ADMIN_PATH, async (c, next) => {
    if (!adminAuthorized(c.req.header('authorization'), token)) {
      return c.json({ error: 'admin token required' }, 401, { 'www-authenticate': 'Basic realm="Segue admin", charset="UTF-8"' });
    }
    return next();
  });
  app.route(ADMIN_PATH, adapter.registerPlugin());
  const listener = getRequestListener(app.fetch);
  return (req: IncomingMessage, res: ServerResponse) => listener(req, res);
}
