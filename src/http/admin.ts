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

/**
 * Bull Board (the Flower of this stack) at /admin/queues: queue depths, jobs, retry and clean of
 * failed jobs. Only when ADMIN_TOKEN is set; otherwise the path does not exist.
 */
export function adminHandler(segue: Segue) {
  const token = segue.config.http.adminToken;
  if (!token) return null;
  const adapter = new HonoAdapter(serveStatic).setBasePath(ADMIN_PATH);
  createBullBoard({
    queues: [segue.jobs.queue, segue.copyJobs.queue, segue.mediaJobs.queue].map(
      (queue) => new BullMQAdapter(queue, { readOnlyMode: false, allowRetries: true }),
    ),
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: 'Segue queues' } },
  });
  const app = new Hono();
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
