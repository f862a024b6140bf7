import { pino, type Logger } from 'pino';
import type { Config } from './config.ts';

export type { Logger };

/** Secrets never reach a log line, wherever they hide in the logged object. */
export const REDACT_PATHS = [
  'apiKey',
  '*.apiKey',
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
];

export function createLogger(config: Pick<Config, 'log'>, bindings: Record<string, unknown> = {}): Logger {
  return pino({
    level: config.log.level,
    base: { ...bindings },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...(config.log.pretty
      ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } }
      : {}),
  });
}
