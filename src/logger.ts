import { pino, type Logger } from 'pino';
import type { Config } from './config.ts';

export type { Logger };

/** Secrets never reach a log line, wherever they hide in the logged object. */
export const REDACT_PATHS = [
  'apiKey',
  '*.apiKey',
  'secret',
  '*.secret',
  'tokenSecret',
  '*.tokenSecret',
  'falKey',
  '*.falKey',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'req.headers.authorization',
  'connectionParams.authorization',
  'config.falKey',
  'config.adminToken',
  // The configuration itself, should it be logged as is (main logs redactedConfig()).
  'config.fal.key',
  'config.http.adminToken',
  'config.auth.tokenSecret',
  'config.media.storage.credentials.secretAccessKey',
];

const SECRET_CONFIG_KEYS = new Set(['key', 'adminToken', 'tokenSecret', 'secretAccessKey', 'accessKeyId']);

/** A URL's password, masked (`postgresql://user:***@host/db`); anything else as it is. */
function maskUrlPassword(value: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return value;
  try {
    const url = new URL(value);
    if (!url.password) return value;
    url.password = '***';
    return url.toString();
  } catch {
    return value;
  }
}

/**
 * The configuration as it may be logged: every secret (fal key, admin token, TOKEN_SECRET, S3
 * credentials) replaced, and the password of every URL (DATABASE_URL, REDIS_URL, ...) masked.
 */
export function redactedConfig(config: Config): unknown {
  const walk = (value: unknown, key: string | null): unknown => {
    if (value === null || value === undefined) return value;
    if (key !== null && SECRET_CONFIG_KEYS.has(key)) return '[redacted]';
    if (typeof value === 'string') return maskUrlPassword(value);
    if (Array.isArray(value)) return value.map((v) => walk(v, null));
    if (typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, k)]));
    return value;
  };
  return walk(config, null);
}

export function createLogger(
  config: Pick<Config, 'log'>,
  bindings: Record<string, unknown> = {},
  /** Where JSON lines go (default: stdout, asynchronously). */
  destination?: pino.DestinationStream,
): Logger {
  const options = {
    level: config.log.level,
    base: { ...bindings },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  if (config.log.pretty) {
    return pino({
      ...options,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } },
    });
  }
  // Asynchronous writes: a busy worker logs a line per job step, and a write per line is a syscall.
  // A minLength of 1 still writes each line at once, but makes flush(cb) wait for the writes in
  // flight (with 0, sonic-boom calls back at once): a stopping process exits after its last line.
  return pino(options, destination ?? pino.destination({ sync: false, minLength: 1 }));
}
