import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Segue } from '../runtime.ts';
import { WEBHOOK_PATH } from '../providers/fal-webhook.ts';
import { consoleHandler } from './console.ts';
import { falWebhookHandler } from './webhooks.ts';
import { SubscriptionLimits } from '../events/limits.ts';
import { attachWebSocket } from './websocket.ts';
import { createYogaServer } from './yoga.ts';

export interface ApiServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** One node:http server: GraphQL (and GraphiQL) on /graphql, health probes beside it. */
export async function startApiServer(segue: Segue, options: { port?: number; host?: string } = {}): Promise<ApiServer> {
  const subscriptions = new SubscriptionLimits(segue.config.subscriptions.perAccount, segue.metrics);
  const yoga = createYogaServer(segue, subscriptions);
  const falWebhook = falWebhookHandler(segue);
  const webConsole = consoleHandler();
  const server = createServer((req, res) => {
    void route(req, res).catch((err) => {
      segue.logger.error({ err, url: req.url }, 'request failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end('{"error":"internal"}');
    });
  });
  async function route(req: IncomingMessage, res: ServerResponse) {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === WEBHOOK_PATH) return falWebhook(req, res);
    if (path === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    if (path === '/graphql' || path.startsWith('/graphql/')) return yoga(req, res, { req, res });
    // Everything else is the web console (when built), or a pointer to GraphiQL.
    if (webConsole.available() && (await webConsole.serve(req, res, path))) return;
    if (path === '/') {
      res.writeHead(302, { location: '/graphql' }).end();
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
  }
  const port = options.port ?? segue.config.port;
  const host = options.host ?? segue.config.host;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const websocket = attachWebSocket(server, yoga, segue);
  const address = server.address() as AddressInfo;
  const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
  const url = `http://${shownHost}:${address.port}`;
  return {
    server,
    url,
    async close() {
      await websocket.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // SSE streams and keep-alive connections would hold close() open: end them.
      server.closeAllConnections();
      await closed;
      await yoga.dispose();
    },
  };
}
