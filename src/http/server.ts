import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { accessTokens } from '../auth/access-tokens.ts';
import { createAuthenticator } from '../auth/authenticate.ts';
import { endUsers } from '../auth/end-users.ts';
import { CredentialSessions } from '../auth/sessions.ts';
import { SubscriptionLimits } from '../events/limits.ts';
import { WEBHOOK_PATH } from '../providers/fal-webhook.ts';
import type { Segue } from '../runtime.ts';
import { ADMIN_PATH, adminHandler } from './admin.ts';
import { consoleHandler } from './console.ts';
import { GRAPHIQL_ASSETS_PATH, serveGraphiQLAsset } from './graphiql/assets.ts';
import { staticFiles } from './static-files.ts';
import { fileURLToPath } from 'node:url';
import { opsHandlers } from './ops.ts';
import { redisRateLimiter } from './rate-limit.ts';
import { falWebhookHandler } from './webhooks.ts';
import { localUploadHandler, privateMediaGuard } from './private-media.ts';
import { LOCAL_UPLOAD_PATH } from '../domain/images.ts';
import type { LocalStorage } from '../media/storage-local.ts';
import { SharedExecutions } from '../graphql/shared-executions.ts';
import { heapNearLimit } from './heap-room.ts';
import { prefersEventStream, serveInTurn, SetupTurns } from './setup-turns.ts';
import { attachWebSocket } from './websocket.ts';
import { corsOptions, createYogaServer } from './yoga.ts';
import { sseRequests } from './sse-subscriptions.ts';
import { yogaLogger } from '../graphql/errors.ts';

export interface ApiServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** Asked of listen(); the kernel gives min(this, net.core.somaxconn). */
const LISTEN_BACKLOG = 65_535;

/** The accept queue this machine gives a listener (net.core.somaxconn), or null where it cannot be read (not Linux; a rootless container hides it). */
export function acceptQueueLimit(): number | null {
  try {
    return Math.min(LISTEN_BACKLOG, Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim()));
  } catch {
    return null;
  }
}

/** The largest body of a request for an event stream (it waits for its setup turn in memory). */
const MAX_STREAM_REQUEST_BYTES = 64 * 1024;

const SAMPLES_DIR = fileURLToPath(new URL('../../assets/samples/', import.meta.url));

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));

/** The route label for metrics: a fixed, small set (never the raw path). */
function routeOf(path: string): string {
  if (path.startsWith(GRAPHIQL_ASSETS_PATH)) return 'graphiql';
  if (path === '/graphql' || path.startsWith('/graphql/')) return 'graphql';
  if (path === WEBHOOK_PATH) return 'webhook';
  if (path.startsWith(ADMIN_PATH)) return 'admin';
  if (path === '/health' || path === '/ready' || path === '/metrics') return path.slice(1);
  if (path.startsWith('/media/')) return 'media';
  if (path.startsWith(LOCAL_UPLOAD_PATH)) return 'upload';
  if (path.startsWith('/samples/')) return 'samples';
  return 'console';
}

export interface ApiServerOptions {
  port?: number;
  host?: string;
  /**
   * Whether this process's heap is near its limit, so that new live streams are refused (default:
   * heapNearLimit, from what the last full collection left). Tests pass their own.
   */
  heapNearLimit?: () => boolean;
  /** The line live streams are set up in (default: SUBSCRIPTION_SETUP_CONCURRENCY turns). Tests pass their own, to hold a turn. */
  setupTurns?: SetupTurns;
}

/**
 * One node:http server: GraphQL over HTTP, SSE and WebSocket on /graphql (GraphiQL on GET),
 * fal webhooks, health and readiness probes, Prometheus metrics, the queue dashboard, and the web
 * console at /.
 */
export async function startApiServer(segue: Segue, options: ApiServerOptions = {}): Promise<ApiServer> {
  const { http } = segue.config;
  const subscriptions = new SubscriptionLimits(segue.config.subscriptions.perAccount, segue.metrics);
  const limiter = redisRateLimiter(() => segue.generationJobs, segue.config.queuePrefix, http.mutationsPerMinute, segue.logger);
  const tokens = accessTokens({ db: segue.db, secret: segue.config.auth.tokenSecret });
  if (segue.config.auth.tokenSecretSource === 'none') {
    segue.logger.warn('browser tokens are off: set TOKEN_SECRET (32+ characters) to enable createAccessToken');
  }
  const { endUsers: endUserAuth } = segue.config.auth;
  if (endUserAuth && (!endUserAuth.issuer || !endUserAuth.audience)) {
    segue.logger.warn('AUTH_JWKS_URL without AUTH_ISSUER and AUTH_AUDIENCE: any token its keys signed is accepted, whoever it was meant for');
  }
  const authenticator = createAuthenticator({
    db: segue.db,
    tokens,
    endUsers: endUserAuth ? endUsers({ db: segue.db, config: endUserAuth, logger: segue.logger }) : null,
  });
  const sessions = new CredentialSessions(segue);
  sessions.start();
  const contextDeps = { segue, authenticator, subscriptions, sessions, tokens };
  // One per process: the viewers of one batch share each event's execution, over either transport.
  const shared = new SharedExecutions(segue.metrics.subscriptionResults);
  const yoga = createYogaServer(contextDeps, limiter, shared);
  // Requests for an event stream: subscriptions served beside Yoga (what they keep is what WebSocket ones keep), the rest by Yoga.
  const sse = sseRequests({
    yoga,
    deps: contextDeps,
    shared,
    keepAliveMs: segue.config.subscriptions.keepAliveMs,
    cors: corsOptions(http),
    log: yogaLogger(segue.logger.child({ component: 'graphql' })),
  });
  // Setting up live streams, WebSocket and SSE alike: SUBSCRIPTION_SETUP_CONCURRENCY at once.
  const turns = options.setupTurns ?? new SetupTurns(segue.config.subscriptions.setupConcurrency, segue.metrics.setupTurnsWaiting);
  // Whether a new stream must be refused (the heap near its limit), counted by transport when so.
  const nearLimit = options.heapNearLimit ?? heapNearLimit;
  const noRoomFor = (transport: 'sse' | 'websocket') => () => {
    if (!nearLimit()) return false;
    segue.metrics.streamsRefused.inc({ transport });
    return true;
  };
  const noRoomForSse = noRoomFor('sse');
  // What Yoga's CORS would add, for answers written here (a browser on another origin must be able
  // to read a refusal and its Retry-After).
  const corsHeadersFor = (req: IncomingMessage): Record<string, string> => {
    const allowed = http.corsOrigins;
    const origin = req.headers.origin;
    if (allowed === null || !origin) return {};
    if (allowed !== '*' && !allowed.includes(origin)) return {};
    return { 'access-control-allow-origin': allowed === '*' ? '*' : origin, 'access-control-expose-headers': 'retry-after', vary: 'origin' };
  };
  const falWebhook = falWebhookHandler(segue);
  const ops = opsHandlers(segue);
  const admin = adminHandler(segue);
  const webConsole = consoleHandler();
  const { storage } = segue.config.media;
  // The local storage driver's files (videos, posters, subtitles), with byte ranges for seeking.
  // Any origin may read them, as it could fal's or a bucket's URLs: frontends on other origins
  // fetch them, draw them on canvases and load their subtitle tracks.
  const mediaFiles =
    storage.driver === 'local'
      ? staticFiles(storage.root, '/media/', { headers: { 'access-control-allow-origin': '*' } })
      : null;
  const privateMedia = privateMediaGuard(segue.config.images.urlSecret);
  const localUploads =
    storage.driver === 'local' ? localUploadHandler(segue, (await segue.media.storage()) as LocalStorage) : null;
  // The sample images of the README's first run (no fal key needed).
  const samples = staticFiles(SAMPLES_DIR, '/samples/');

  async function route(req: IncomingMessage, res: ServerResponse, path: string) {
    if (segue.config.graphiql && path.startsWith(GRAPHIQL_ASSETS_PATH)) {
      if (await serveGraphiQLAsset(req, res, path)) return;
      return json(res, 404, { error: 'not found' });
    }
    if (path === '/graphql' || path.startsWith('/graphql/')) {
      // Image uploads (GraphQL multipart requests) stream to disk, up to one image plus overhead.
      const upload = (req.headers['content-type'] ?? '').toLowerCase().startsWith('multipart/form-data');
      // Bodies are capped before anything reads them; a body without a length is refused.
      if (req.method === 'POST') {
        const length = Number(req.headers['content-length']);
        if (req.headers['content-length'] === undefined) {
          res.setHeader('connection', 'close');
          return json(res, 411, { errors: [{ message: 'Content-Length is required.', extensions: { code: 'BAD_USER_INPUT' } }] });
        }
        const cap = upload ? segue.config.images.maxUploadRequestBytes : http.maxBodyBytes;
        if (!Number.isFinite(length) || length > cap) {
          res.setHeader('connection', 'close');
          const extensions = upload ? { code: 'BAD_USER_INPUT', reason: 'IMAGE_TOO_LARGE', fields: ['file'] } : { code: 'BAD_USER_INPUT' };
          const message = upload ? `The upload is over ${segue.config.images.maxBytes} bytes.` : `Request body over ${http.maxBodyBytes} bytes.`;
          return json(res, 413, { errors: [{ message, extensions }] });
        }
      }
      // A stream over SSE is set up in turn, with the WebSockets' (one line for both per process).
      if (!upload && prefersEventStream(req.headers.accept)) {
        // Its body waits in memory for its turn: a subscription is a short document.
        if (Number(req.headers['content-length'] ?? 0) > MAX_STREAM_REQUEST_BYTES) {
          res.setHeader('connection', 'close');
          return json(res, 413, { errors: [{ message: `A subscription request over ${MAX_STREAM_REQUEST_BYTES} bytes.`, extensions: { code: 'BAD_USER_INPUT' } }] });
        }
        return serveInTurn(turns, req, res, (setUp) => sse(req, res, setUp), { full: noRoomForSse, refusalHeaders: corsHeadersFor });
      }
      return yoga(req, res, { req, res });
    }
    if (path === WEBHOOK_PATH) return falWebhook(req, res);
    if (localUploads && path.startsWith(LOCAL_UPLOAD_PATH)) return localUploads(req, res, path);
    if (path === '/health') return ops.health(req, res);
    if (path === '/ready') return ops.ready(req, res);
    if (path === '/metrics') return ops.metrics(req, res);
    if (path.startsWith('/media/')) {
      // Images of an account are private: only a signed URL reads them.
      const access = privateMedia(req, res, path);
      if (access === 'refused') return;
      if (mediaFiles && (await mediaFiles(req, res, path))) return;
      return json(res, 404, { error: 'not found' });
    }
    if (path.startsWith('/samples/') && (await samples(req, res, path))) return;
    if (path === ADMIN_PATH || path.startsWith(`${ADMIN_PATH}/`)) {
      if (admin) return admin(req, res);
      return json(res, 404, { error: 'not found' });
    }
    // Everything else is the web console (when built), or a pointer to GraphiQL.
    if (webConsole.available() && (await webConsole.serve(req, res, path))) return;
    if (path === '/') return void res.writeHead(302, { location: '/graphql' }).end();
    return json(res, 404, { error: 'not found' });
  }

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const end = segue.metrics.httpDuration.startTimer({ route: routeOf(path), method: req.method ?? 'GET' });
    // A client that left before any answer was written is counted apart from the answered.
    res.once('close', () => end({ status: res.headersSent ? `${Math.floor(res.statusCode / 100)}xx` : 'aborted' }));
    void route(req, res, path).catch((err) => {
      segue.logger.error({ err, path }, 'request failed');
      if (!res.headersSent) json(res, 500, { error: 'internal' });
      else res.end();
    });
  });
  // Headers and idle sockets must not hold the server open forever.
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;
  const port = options.port ?? segue.config.port;
  const host = options.host ?? segue.config.host;
  // Prisma's engine starts on first use (about 0.3 s of CPU and 30 MB, compiling its
  // WebAssembly; it opens no connection): started before listening, so the first requests after a
  // restart, when every browser reconnects at once, do not wait for it.
  await segue.db.$connect();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // As deep an accept queue as the kernel allows (it caps this at net.core.somaxconn). Node
    // takes one connection off it per turn of its event loop (libuv 1.45+), and in a reconnect
    // burst each turn also serves the connections already taken: with 10,000 browsers
    // reconnecting after a restart it stayed full for about 10 s, and the kernel drops handshakes
    // over a full queue, some of which end reset (bench/subscriptions.ts: 547-980 of 10,000
    // reconnected at somaxconn 4096, none at 16384).
    server.listen({ port, host, backlog: LISTEN_BACKLOG }, () => resolve());
  });
  const websocket = attachWebSocket(server, yoga, contextDeps, shared, turns, noRoomFor('websocket'));
  const address = server.address() as AddressInfo;
  const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
  const url = `http://${shownHost}:${address.port}`;
  return {
    server,
    url,
    async close() {
      sessions.close();
      await websocket.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // SSE streams and keep-alive connections would hold close() open: end them.
      server.closeAllConnections();
      await closed;
      await yoga.dispose();
    },
  };
}
