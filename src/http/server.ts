import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Segue } from '../runtime.ts';
import { WEBHOOK_PATH } from '../providers/fal-webhook.ts';
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
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === WEBHOOK_PATH) {
      void falWebhook(req, res);
      return;
    }
    if (path === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    if (path === '/') {
      res.writeHead(302, { location: '/graphql' }).end();
      return;
    }
    void yoga(req, res, { req, res });
  });
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
