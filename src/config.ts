import { createHash } from 'node:crypto';
import { parseEndpointId } from '@fal-ai/client';
import { z } from 'zod';

const isEndpointId = (value: string) => {
  try {
    const { owner, alias } = parseEndpointId(value);
    return !!owner && !!alias;
  } catch {
    return false;
  }
};

/**
 * Every environment variable Segue reads, parsed and validated once. Nothing else in the code
 * reads process.env: entrypoints call loadConfig() and pass the result down.
 */
const bool = z
  .enum(['true', 'false', '1', '0', ''])
  .transform((v) => v === 'true' || v === '1');

const url = (protocols: string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    { message: `must be a ${protocols.map((p) => p.replace(':', '')).join(' or ')} URL` },
  );

/**
 * Generation jobs run beyond FAL_CONCURRENCY, their rows and images ready, each waiting to submit
 * the moment a slot frees (see GenerationQueue.setFalConcurrency): half of FAL_CONCURRENCY (at
 * least 10, never more than FAL_CONCURRENCY). fal's requests end in bursts (a batch submitted
 * together finishes together), and a slot with no staged job waits for a tracking job to end and
 * the next one to load (makespan 500 at 2 s latency and 100 slots: 1.37x ideal with 10 staged,
 * 1.21-1.31x with 50, about the same with 100). A waiting claim holds no slot and sends nothing.
 */
export const stagedJobs = (falConcurrency: number) => Math.min(falConcurrency, Math.max(10, Math.ceil(falConcurrency / 2)));

/**
 * Published prices per second of generated video, by fal model. Kling v2.1 Pro: $0.49 for 5 s
 * plus $0.098 per extra second, i.e. $0.098/s ($0.98 for 10 s). FAL_PRICE_PER_SECOND overrides.
 */
export const MODEL_PRICES_USD_PER_SECOND: Readonly<Record<string, number>> = {
  'fal-ai/kling-video/v2.1/pro/image-to-video': 0.098,
  'fal-ai/kling-video/v2.1/standard/image-to-video': 0.056,
};

const schema = z.object({
  /**
   * Unset means production: a bare `node dist/main.js` gets the safe defaults (no private-network
   * fetches, no GraphiQL, no open CORS). `npm start` and the tsx scripts set development.
   */
  NODE_ENV: z.enum(['development', 'production', 'test']).default('production'),
  DATABASE_URL: url(['postgresql:', 'postgres:']).default('postgresql://postgres@127.0.0.1:5432/segue'),
  /** Connections per process (API and worker each have their own pool; a generation worker opens one more, for its claims). */
  DATABASE_POOL_SIZE: z.coerce.number().int().min(2).max(500).default(10),
  /** How long to wait for a PostgreSQL connection (a new one, or a free one from the pool). */
  DATABASE_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(100).default(15_000),
  /** The longest a statement may run (PostgreSQL's statement_timeout; the client gives up 5 s later). */
  DATABASE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
  REDIS_URL: url(['redis:', 'rediss:']).optional(),
  /** Redis Cluster: seed nodes, comma-separated (`host:port` or redis(s):// URLs); replaces REDIS_URL. */
  REDIS_CLUSTER_NODES: z.string().optional(),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  HOST: z.string().min(1).default('0.0.0.0'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Pretty logs for humans; JSON otherwise. Defaults to pretty outside production. */
  LOG_PRETTY: bool.optional(),
  GRAPHIQL: bool.optional(),
  /** Public base URL of the API; when set, fal calls back /webhooks/fal here. */
  PUBLIC_URL: url(['http:', 'https:']).optional(),

  /** Default `segue`, or `{segue}` on Redis Cluster (see queuePrefixOf). */
  QUEUE_PREFIX: z.string().regex(/^[\w{}.-]+$/, 'letters, digits, _ . - { } only').optional(),
  FAL_KEY: z.string().optional(),
  // Parsed by the client's own parser: submits and Segue's status calls must name the same app.
  FAL_MODEL: z
    .string()
    .refine(isEndpointId, 'must be a fal endpoint id, owner/alias[/path] (e.g. fal-ai/kling-video/v2.1/pro/image-to-video)')
    .default('fal-ai/kling-video/v2.1/pro/image-to-video'),
  FAL_PROXY_URL: url(['http:', 'https:']).optional(),
  FAL_JWKS_URL: url(['http:', 'https:']).default('https://rest.fal.ai/.well-known/jwks.json'),
  FAL_CONCURRENCY: z.coerce.number().int().min(1).max(10_000).default(10),
  FAL_MAX_RETRIES: z.coerce.number().int().min(0).max(20).default(3),
  FAL_RETRY_DELAY_MS: z.coerce.number().int().min(0).default(10_000),
  /** The longest a request may run IN_PROGRESS at fal before Segue cancels it there. */
  FAL_TIMEOUT_MS: z.coerce.number().int().min(1_000).default(20 * 60_000),
  /** The longest a request may wait IN_QUEUE at fal before Segue cancels it there (unset: no limit). */
  FAL_QUEUE_TIMEOUT_MS: z.coerce.number().int().min(1_000).optional(),
  /** After a cancel of an overrun request, how long its run keeps waiting for fal to end it. */
  FAL_CANCEL_GRACE_MS: z.coerce.number().int().min(100).default(10 * 60_000),
  /** How long to keep trying to read the result of a request fal has finished. */
  FAL_RESULT_TIMEOUT_MS: z.coerce.number().int().min(100).default(10 * 60_000),
  /** Each status, result or cancel call to fal (a cancel's retries by the client included). */
  FAL_CALL_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
  /**
   * With webhooks: how long a worker that saw a request finish on fal's status stream waits for
   * the webhook to bring its result before reading it from fal itself (0: at once).
   */
  FAL_WEBHOOK_WAIT_MS: z.coerce.number().int().min(0).max(60_000).default(1_000),
  /** How a request's progress is followed: fal's status stream (SSE), or polling. */
  FAL_STATUS_MODE: z.enum(['stream', 'poll']).default('stream'),
  /** A status stream that sends nothing (fal sends a comment every 15 s) for this long is reopened. */
  FAL_STREAM_IDLE_MS: z.coerce.number().int().min(100).default(20_000),
  FAL_POLL_INTERVAL_MS: z.coerce.number().int().min(10).default(2_000),
  FAL_POLL_MAX_INTERVAL_MS: z.coerce.number().int().min(10).default(15_000),
  FAL_SUBMIT_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
  /** Each call of an image's upload to fal's storage: asking for its URL (each of the client's tries), and the PUT of the bytes with its answer. */
  FAL_UPLOAD_TIMEOUT_MS: z.coerce.number().int().min(100).default(60_000),
  /** Default: enough for one worker to hold FAL_CONCURRENCY requests and the staged jobs beyond them, at least 100. */
  WORKER_CONCURRENCY: z.coerce.number().int().min(0).max(10_000).optional(),
  COPY_CONCURRENCY: z.coerce.number().int().min(1).max(1_000).default(20),
  WORKER_LOCK_DURATION_MS: z.coerce.number().int().min(1_000).default(30_000),
  WORKER_STALLED_INTERVAL_MS: z.coerce.number().int().min(500).default(30_000),
  RECONCILE_INTERVAL_MS: z.coerce.number().int().min(100).default(30_000),
  SUBSCRIPTIONS_PER_CONNECTION: z.coerce.number().int().min(1).default(50),
  SUBSCRIPTIONS_PER_ACCOUNT: z.coerce.number().int().min(1).default(200),
  SUBSCRIPTION_BUFFER: z.coerce.number().int().min(10).default(1_000),
  SUBSCRIPTION_SETUP_CONCURRENCY: z.coerce.number().int().min(1).max(10_000).default(16),
  SUBSCRIPTION_KEEPALIVE_MS: z.coerce.number().int().min(100).default(12_000),
  FAL_PRICE_PER_SECOND: z.coerce.number().min(0).optional(),

  MEDIA_DIR: z.string().min(1).default('./data/media'),
  /** Base URL of the local driver's files; default PUBLIC_URL (or http://localhost:PORT) + /media. */
  MEDIA_PUBLIC_URL: url(['http:', 'https:']).optional(),
  STORAGE_DRIVER: z.enum(['local', 's3']).default('local'),
  S3_BUCKET: z.string().min(3).max(63).optional(),
  S3_ENDPOINT: url(['http:', 'https:']).optional(),
  S3_REGION: z.string().min(1).default('us-east-1'),
  S3_ACCESS_KEY_ID: z.string().optional(),
  S3_SECRET_ACCESS_KEY: z.string().optional(),
  S3_FORCE_PATH_STYLE: bool.optional(),
  S3_PUBLIC_URL: url(['http:', 'https:']).optional(),
  /** Each S3 request: connecting, and then silence on the socket. */
  S3_TIMEOUT_MS: z.coerce.number().int().min(100).default(30_000),
  ALLOW_PRIVATE_NETWORK: bool.optional(),
  MEDIA_MAX_BYTES: z.coerce.number().int().min(1024).default(500 * 1024 * 1024),
  MEDIA_FETCH_TIMEOUT_MS: z.coerce.number().int().min(1_000).default(120_000),
  MEDIA_CONCURRENCY: z.coerce.number().int().min(0).max(64).default(2),
  PREVIEW_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  /** The niceness of ffmpeg and ffprobe runs (posters, previews, combined videos): 0 is the worker's own priority. */
  MEDIA_NICE: z.coerce.number().int().min(0).max(19).default(10),
  FFMPEG_PATH: z.string().optional(),
  FFPROBE_PATH: z.string().optional(),
  OPS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  CORS_ORIGINS: z.string().optional(),
  INTROSPECTION: bool.optional(),
  MAX_BODY_BYTES: z.coerce.number().int().min(1024).default(1024 * 1024),
  RATE_LIMIT_MUTATIONS_PER_MINUTE: z.coerce.number().int().min(0).default(120),
  /** How long an idempotencyKey is remembered. */
  IDEMPOTENCY_TTL_HOURS: z.coerce.number().min(0.001).max(24 * 365).default(24),
  GRAPHQL_MAX_DEPTH: z.coerce.number().int().min(2).default(12),
  GRAPHQL_MAX_ALIASES: z.coerce.number().int().min(1).default(20),
  GRAPHQL_MAX_TOKENS: z.coerce.number().int().min(100).default(3_000),
  GRAPHQL_MAX_COST: z.coerce.number().int().min(100).default(100_000),

  // ---- Credentials: browser tokens and end users of an identity provider ----
  /** Signs browser tokens (HS256). Required in production; derived in development and tests. */
  TOKEN_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  /** End users: bearer JWTs of the app's identity provider, verified against its JWKS. */
  AUTH_JWKS_URL: url(['http:', 'https:']).optional(),
  AUTH_ISSUER: z.string().min(1).optional(),
  /** One audience, or a comma list (a token must name one of them). */
  AUTH_AUDIENCE: z.string().min(1).optional(),
  AUTH_ACCOUNT_CLAIM: z.string().min(1).default('sub'),
  AUTH_NAME_CLAIM: z.string().min(1).default('name'),
  AUTH_DEFAULT_BUDGET_USD: z.coerce.number().min(0).optional(),
  // ---- Images (uploads, checks before spending, images fal can reach) ----
  /** Largest image accepted (uploads and URL images); Kling's own limit is 10 MB. */
  IMAGE_MAX_BYTES: z.coerce.number().int().min(1024).max(100 * 1024 * 1024).default(10 * 1024 * 1024),
  /** Upload stored images to fal's storage: when Segue's own URLs are not public (auto), always, or never. */
  FAL_IMAGE_UPLOAD: z.enum(['auto', 'always', 'never']).default('auto'),
  /** Signs private media URLs and local upload URLs; default derived from DATABASE_URL (set it in production). */
  MEDIA_URL_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  /** How long a URL image's check (and its stored copy) is reused before the URL is fetched again. */
  IMAGE_CHECK_TTL_MS: z.coerce.number().int().min(0).default(10 * 60_000),
});

export type Config = Readonly<{
  env: 'development' | 'production' | 'test';
  databaseUrl: string;
  databasePoolSize: number;
  database: { connectTimeoutMs: number; statementTimeoutMs: number };
  /** One Redis server (REDIS_URL), or a Redis Cluster (REDIS_CLUSTER_NODES). */
  redis: RedisTarget;
  port: number;
  host: string;
  log: { level: string; pretty: boolean };
  graphiql: boolean;
  publicUrl: string | null;
  queuePrefix: string;
  fal: {
    /** Empty means "no fal account": the local preview provider renders instead. */
    key: string | null;
    model: string;
    proxyUrl: string | null;
    jwksUrl: string;
    concurrency: number;
    maxRetries: number;
    retryDelayMs: number;
    /** IN_PROGRESS time allowed before a cancel at fal. */
    timeoutMs: number;
    /** IN_QUEUE time allowed before a cancel at fal; null: no limit. */
    queueTimeoutMs: number | null;
    cancelGraceMs: number;
    resultTimeoutMs: number;
    callTimeoutMs: number;
    /** With webhooks, how long a request fal's stream says finished waits for its webhook's result before it is read. */
    webhookWaitMs: number;
    /** Follow requests on fal's status stream (falling back to polling when streams fail), or poll. */
    statusMode: 'stream' | 'poll';
    streamIdleMs: number;
    pollIntervalMs: number;
    pollMaxIntervalMs: number;
    submitTimeoutMs: number;
    uploadTimeoutMs: number;
  };
  /** USD per second of video for FAL_MODEL, or null when unknown (costs are then not estimated). */
  pricePerSecondUsd: number | null;
  /** Which video provider generates: fal when FAL_KEY is set, else the local ffmpeg preview. */
  provider: 'fal' | 'preview';
  media: {
    /** Base of absolute media URLs: PUBLIC_URL, or http://localhost:PORT. */
    baseUrl: string;
    storage:
      | {
          driver: 'local';
          root: string;
          publicBaseUrl: string;
          /** Neither MEDIA_PUBLIC_URL nor PUBLIC_URL was given: publicBaseUrl is http://localhost:PORT/media. */
          defaultPublicBaseUrl: boolean;
        }
      | {
          driver: 's3';
          bucket: string;
          endpoint: string | null;
          region: string;
          credentials: { accessKeyId: string; secretAccessKey: string } | null;
          forcePathStyle: boolean;
          publicBaseUrl: string | null;
          timeoutMs: number;
        };
    allowPrivateNetwork: boolean;
    maxBytes: number;
    fetchTimeoutMs: number;
    concurrency: number;
    previewConcurrency: number;
    /** The niceness of ffmpeg and ffprobe runs (MEDIA_NICE). */
    nice: number;
    ffmpegPath: string | null;
    ffprobePath: string | null;
  };
  /** Worker-only processes serve /health, /ready and /metrics here when set. */
  opsPort: number | null;
  http: {
    /** Enables the queue dashboard at /admin/queues. */
    adminToken: string | null;
    /** Allowed browser origins: '*' or a list; null = same origin only. */
    corsOrigins: '*' | string[] | null;
    introspection: boolean;
    maxBodyBytes: number;
    mutationsPerMinute: number;
    idempotencyTtlMs: number;
    limits: { depth: number; aliases: number; tokens: number; cost: number };
  };
  auth: {
    /**
     * The HS256 secret of browser tokens: TOKEN_SECRET, or in development and tests one derived
     * from DATABASE_URL (so every process of one setup agrees); null in production without
     * TOKEN_SECRET, which turns browser tokens off.
     */
    tokenSecret: string | null;
    tokenSecretSource: 'env' | 'derived' | 'none';
    /** End users of the app's identity provider (AUTH_JWKS_URL), or null when off. */
    endUsers: EndUserAuth | null;
  };
  subscriptions: {
    perConnection: number;
    /** On each API instance. */
    perAccount: number;
    /** Events waiting for a slow client before its subscription is ended. */
    buffer: number;
    /**
     * WebSocket connections, subscriptions and SSE requests set up at once per API process (credential check,
     * snapshot read); the rest wait their turn, so a burst of reconnecting browsers cannot
     * exhaust the heap or the database pool.
     */
    setupConcurrency: number;
    /** How often every WebSocket is pinged (one that did not answer the previous ping is closed), and every SSE stream sent a comment. */
    keepAliveMs: number;
  };
  images: {
    maxBytes: number;
    falUpload: 'auto' | 'always' | 'never';
    urlSecret: string;
    checkTtlMs: number;
    /** Largest multipart GraphQL request: one image plus the operation and form overhead. */
    maxUploadRequestBytes: number;
  };
  worker: {
    concurrency: number;
    /** Finished videos copied into storage at once per generation worker process. */
    copyConcurrency: number;
    lockDurationMs: number;
    stalledIntervalMs: number;
    reconcileIntervalMs: number;
  };
}>;

/**
 * Where Redis is. `nodes` are a cluster's seed nodes as redis(s):// URLs (credentials and TLS in
 * them, so the logged configuration masks passwords like any URL's); the client finds the rest.
 */
export type RedisTarget = { mode: 'single'; url: string } | { mode: 'cluster'; nodes: readonly string[] };

export interface EndUserAuth {
  jwksUrl: string;
  /** Required `iss`, when set. */
  issuer: string | null;
  /** The token's `aud` must name one of these, when set. */
  audience: string[] | null;
  /** The claim whose value names the account (one account per issuer and value). */
  accountClaim: string;
  /** The claim that names a new account. */
  nameClaim: string;
  /** The budget of accounts made on first sight; null: none. */
  defaultBudgetUsd: number | null;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses `env` with `shape`; a failure is a ConfigError of one line naming the bad variable. */
function parseEnv<S extends z.ZodType>(shape: S, env: Record<string, string | undefined>): z.output<S> {
  // Empty strings mean "unset", as in most .env tooling.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = shape.safeParse(present);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const name = issue.path.join('.');
  throw new ConfigError(`Invalid configuration: ${name}=${JSON.stringify(env[name] ?? '')} ${issue.message}`);
}

/** Parses the environment; throws a ConfigError whose message is one line naming the bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const c = parseEnv(schema, env);
  for (const name of ['AUTH_ISSUER', 'AUTH_AUDIENCE', 'AUTH_DEFAULT_BUDGET_USD'] as const) {
    if (c[name] !== undefined && !c.AUTH_JWKS_URL) {
      throw new ConfigError(`Invalid configuration: ${name}=${JSON.stringify(env[name])} needs AUTH_JWKS_URL (end users are off without it)`);
    }
  }
  if (c.STORAGE_DRIVER === 's3' && !c.S3_BUCKET) {
    throw new ConfigError('Invalid configuration: S3_BUCKET="" is required when STORAGE_DRIVER=s3');
  }
  const redis = redisTargetOf(c);
  return Object.freeze({
    env: c.NODE_ENV,
    databaseUrl: c.DATABASE_URL,
    databasePoolSize: c.DATABASE_POOL_SIZE,
    database: { connectTimeoutMs: c.DATABASE_CONNECT_TIMEOUT_MS, statementTimeoutMs: c.DATABASE_STATEMENT_TIMEOUT_MS },
    redis,
    port: c.PORT,
    host: c.HOST,
    log: { level: c.LOG_LEVEL, pretty: c.LOG_PRETTY ?? c.NODE_ENV === 'development' },
    graphiql: c.GRAPHIQL ?? c.NODE_ENV !== 'production',
    publicUrl: c.PUBLIC_URL?.replace(/\/+$/, '') ?? null,
    queuePrefix: queuePrefixOf(c.QUEUE_PREFIX, redis),
    fal: {
      key: c.FAL_KEY?.trim() || null,
      model: c.FAL_MODEL,
      proxyUrl: c.FAL_PROXY_URL ?? null,
      jwksUrl: c.FAL_JWKS_URL,
      concurrency: c.FAL_CONCURRENCY,
      maxRetries: c.FAL_MAX_RETRIES,
      retryDelayMs: c.FAL_RETRY_DELAY_MS,
      timeoutMs: c.FAL_TIMEOUT_MS,
      queueTimeoutMs: c.FAL_QUEUE_TIMEOUT_MS ?? null,
      cancelGraceMs: c.FAL_CANCEL_GRACE_MS,
      resultTimeoutMs: c.FAL_RESULT_TIMEOUT_MS,
      callTimeoutMs: c.FAL_CALL_TIMEOUT_MS,
      webhookWaitMs: c.FAL_WEBHOOK_WAIT_MS,
      statusMode: c.FAL_STATUS_MODE,
      streamIdleMs: c.FAL_STREAM_IDLE_MS,
      pollIntervalMs: c.FAL_POLL_INTERVAL_MS,
      pollMaxIntervalMs: Math.max(c.FAL_POLL_MAX_INTERVAL_MS, c.FAL_POLL_INTERVAL_MS),
      submitTimeoutMs: c.FAL_SUBMIT_TIMEOUT_MS,
      uploadTimeoutMs: c.FAL_UPLOAD_TIMEOUT_MS,
    },
    provider: c.FAL_KEY?.trim() ? ('fal' as const) : ('preview' as const),
    // The local preview costs nothing.
    pricePerSecondUsd: !c.FAL_KEY?.trim() ? 0 : (c.FAL_PRICE_PER_SECOND ?? MODEL_PRICES_USD_PER_SECOND[c.FAL_MODEL] ?? null),
    media: {
      baseUrl: (c.PUBLIC_URL ?? `http://localhost:${c.PORT}`).replace(/\/+$/, ''),
      storage:
        c.STORAGE_DRIVER === 's3'
          ? {
              driver: 's3' as const,
              bucket: c.S3_BUCKET ?? '',
              endpoint: c.S3_ENDPOINT ?? null,
              region: c.S3_REGION,
              credentials:
                c.S3_ACCESS_KEY_ID && c.S3_SECRET_ACCESS_KEY
                  ? { accessKeyId: c.S3_ACCESS_KEY_ID, secretAccessKey: c.S3_SECRET_ACCESS_KEY }
                  : null,
              forcePathStyle: c.S3_FORCE_PATH_STYLE ?? c.S3_ENDPOINT !== undefined,
              publicBaseUrl: c.S3_PUBLIC_URL?.replace(/\/+$/, '') ?? null,
              timeoutMs: c.S3_TIMEOUT_MS,
            }
          : {
              driver: 'local' as const,
              root: c.MEDIA_DIR,
              // PUBLIC_URL without its trailing slash, as everywhere: `https://x//media` is no URL the API serves.
              publicBaseUrl: (c.MEDIA_PUBLIC_URL ?? `${(c.PUBLIC_URL ?? `http://localhost:${c.PORT}`).replace(/\/+$/, '')}/media`).replace(/\/+$/, ''),
              defaultPublicBaseUrl: c.MEDIA_PUBLIC_URL === undefined && c.PUBLIC_URL === undefined,
            },
      // Development and tests fetch from localhost; anything else (production, NODE_ENV unset)
      // must not reach private networks unless ALLOW_PRIVATE_NETWORK says so.
      allowPrivateNetwork: c.ALLOW_PRIVATE_NETWORK ?? c.NODE_ENV !== 'production',
      maxBytes: c.MEDIA_MAX_BYTES,
      fetchTimeoutMs: c.MEDIA_FETCH_TIMEOUT_MS,
      concurrency: c.MEDIA_CONCURRENCY,
      previewConcurrency: c.PREVIEW_CONCURRENCY,
      nice: c.MEDIA_NICE,
      ffmpegPath: c.FFMPEG_PATH ?? null,
      ffprobePath: c.FFPROBE_PATH ?? null,
    },
    opsPort: c.OPS_PORT ?? null,
    http: {
      adminToken: c.ADMIN_TOKEN ?? null,
      corsOrigins:
        c.CORS_ORIGINS === undefined
          ? c.NODE_ENV === 'production'
            ? null
            : ('*' as const)
          : c.CORS_ORIGINS.trim() === '*'
            ? ('*' as const)
            : c.CORS_ORIGINS.split(',').map((o) => o.trim()).filter(Boolean),
      introspection: c.INTROSPECTION ?? c.NODE_ENV !== 'production',
      maxBodyBytes: c.MAX_BODY_BYTES,
      mutationsPerMinute: c.RATE_LIMIT_MUTATIONS_PER_MINUTE,
      idempotencyTtlMs: Math.round(c.IDEMPOTENCY_TTL_HOURS * 3_600_000),
      limits: { depth: c.GRAPHQL_MAX_DEPTH, aliases: c.GRAPHQL_MAX_ALIASES, tokens: c.GRAPHQL_MAX_TOKENS, cost: c.GRAPHQL_MAX_COST },
    },
    auth: { ...tokenSecretOf(c), endUsers: endUsersOf(c) },
    subscriptions: {
      perConnection: c.SUBSCRIPTIONS_PER_CONNECTION,
      perAccount: c.SUBSCRIPTIONS_PER_ACCOUNT,
      buffer: c.SUBSCRIPTION_BUFFER,
      setupConcurrency: c.SUBSCRIPTION_SETUP_CONCURRENCY,
      keepAliveMs: c.SUBSCRIPTION_KEEPALIVE_MS,
    },
    images: {
      maxBytes: c.IMAGE_MAX_BYTES,
      falUpload: c.FAL_IMAGE_UPLOAD,
      urlSecret: c.MEDIA_URL_SECRET ?? createHash('sha256').update(`segue-media-urls:${c.DATABASE_URL}`).digest('base64url'),
      checkTtlMs: c.IMAGE_CHECK_TTL_MS,
      maxUploadRequestBytes: c.IMAGE_MAX_BYTES + 256 * 1024,
    },
    worker: {
      concurrency: c.WORKER_CONCURRENCY ?? Math.min(10_000, Math.max(100, c.FAL_CONCURRENCY + stagedJobs(c.FAL_CONCURRENCY))),
      copyConcurrency: c.COPY_CONCURRENCY,
      lockDurationMs: c.WORKER_LOCK_DURATION_MS,
      stalledIntervalMs: c.WORKER_STALLED_INTERVAL_MS,
      reconcileIntervalMs: c.RECONCILE_INTERVAL_MS,
    },
  });
}

/**
 * REDIS_URL (default localhost), or REDIS_CLUSTER_NODES: never both, since which one Segue would
 * use is exactly the kind of guess a deployment should not depend on.
 */
function redisTargetOf(c: z.output<typeof schema>): RedisTarget {
  if (c.REDIS_CLUSTER_NODES === undefined) return { mode: 'single', url: c.REDIS_URL ?? 'redis://127.0.0.1:6379' };
  // Echoed without passwords: this line goes to the terminal and the logs.
  const mask = (value: string) => value.replace(/(:\/\/[^:@/,]*:)[^@/,]*@/g, '$1***@');
  const bad = (why: string) => new ConfigError(`Invalid configuration: REDIS_CLUSTER_NODES=${JSON.stringify(mask(c.REDIS_CLUSTER_NODES!))} ${why}`);
  if (c.REDIS_URL !== undefined) throw bad('and REDIS_URL are both set: unset one (REDIS_URL is one server, REDIS_CLUSTER_NODES a cluster)');
  const entries = c.REDIS_CLUSTER_NODES.split(',').map((e) => e.trim()).filter(Boolean);
  if (entries.length === 0) throw bad('must list at least one node (host:port)');
  const nodes = entries.map((entry) => {
    let node: URL;
    try {
      node = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(entry) ? entry : `redis://${entry}`);
    } catch {
      throw bad(`has a node that is neither host:port nor a redis:// URL: ${mask(entry)}`);
    }
    if (!['redis:', 'rediss:'].includes(node.protocol) || !node.hostname || (node.pathname !== '' && node.pathname !== '/')) {
      throw bad(`has a node that is neither host:port nor a redis:// URL (no database number on a cluster): ${mask(entry)}`);
    }
    node.port ||= '6379';
    return node;
  });
  // One set of connection options serves every node the client discovers.
  const access = new Set(nodes.filter((n) => n.username || n.password || n.protocol === 'rediss:').map((n) => `${n.protocol}${n.username}:${n.password}`));
  if (access.size > 1) throw bad('gives its nodes different credentials or TLS settings; every node of a cluster takes the same');
  const [shared] = nodes.filter((n) => n.username || n.password || n.protocol === 'rediss:');
  return {
    mode: 'cluster',
    nodes: nodes.map((n) => {
      if (shared) {
        n.protocol = shared.protocol;
        n.username = shared.username;
        n.password = shared.password;
      }
      return `${n.protocol}//${n.username || n.password ? `${n.username}${n.password ? `:${n.password}` : ''}@` : ''}${n.host}`;
    }),
  };
}

/**
 * The first `{...}` of a key (non-empty) is its hash tag: on a cluster only keys with the same tag
 * share a slot, and every key Segue and BullMQ write starts with the prefix.
 */
function hashTagOf(key: string): string | null {
  const open = key.indexOf('{');
  if (open < 0) return null;
  const close = key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : null;
}

/**
 * BullMQ's Lua scripts (and Segue's fair-share script) touch several keys of a queue at once,
 * which Redis Cluster allows only when they hash to one slot: on a cluster the prefix must carry
 * a hash tag. The default gets one; a prefix given without is refused rather than changed behind
 * the user's back (the keys of a running deployment would move).
 */
function queuePrefixOf(prefix: string | undefined, redis: RedisTarget): string {
  if (redis.mode === 'single') return prefix ?? 'segue';
  if (prefix === undefined) return '{segue}';
  if (hashTagOf(prefix) === null) {
    throw new ConfigError(
      `Invalid configuration: QUEUE_PREFIX=${JSON.stringify(prefix)} needs a hash tag on Redis Cluster, e.g. {${prefix.replace(/[{}]/g, '') || 'segue'}}: BullMQ's scripts use several keys of a queue at once, which a cluster allows only within one slot`,
    );
  }
  return prefix;
}

/**
 * TOKEN_SECRET, or outside production a secret derived from DATABASE_URL: tokens work out of the
 * box in development and tests, and every process of one setup derives the same. Anyone who
 * knows the database URL could derive it too, which is why production never does.
 */
function tokenSecretOf(c: z.output<typeof schema>): Pick<Config['auth'], 'tokenSecret' | 'tokenSecretSource'> {
  if (c.TOKEN_SECRET) return { tokenSecret: c.TOKEN_SECRET, tokenSecretSource: 'env' };
  if (c.NODE_ENV === 'production') return { tokenSecret: null, tokenSecretSource: 'none' };
  const derived = createHash('sha256').update(`segue development token secret\0${c.DATABASE_URL}`).digest('base64url');
  return { tokenSecret: derived, tokenSecretSource: 'derived' };
}

function endUsersOf(c: z.output<typeof schema>): EndUserAuth | null {
  if (!c.AUTH_JWKS_URL) return null;
  return {
    jwksUrl: c.AUTH_JWKS_URL,
    issuer: c.AUTH_ISSUER ?? null,
    audience: c.AUTH_AUDIENCE ? c.AUTH_AUDIENCE.split(',').map((a) => a.trim()).filter(Boolean) : null,
    accountClaim: c.AUTH_ACCOUNT_CLAIM,
    nameClaim: c.AUTH_NAME_CLAIM,
    defaultBudgetUsd: c.AUTH_DEFAULT_BUDGET_USD ?? null,
  };
}

const cliSchema = z.object({
  SEGUE_API_URL: url(['http:', 'https:']).default('http://localhost:4000'),
  SEGUE_API_KEY: z.string().optional(),
});

/** The command line talks to a running API like any client: where it is, and which key to use. */
export function loadCliConfig(env: Record<string, string | undefined> = process.env) {
  const c = parseEnv(cliSchema, env);
  return { apiUrl: c.SEGUE_API_URL.replace(/\/+$/, ''), apiKey: c.SEGUE_API_KEY ?? null };
}
