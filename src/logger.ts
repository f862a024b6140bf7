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
  return pino(options, destination ?? pino.destination({ sync: false }));
}
