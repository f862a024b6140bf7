import { z } from 'zod';

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

const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  DATABASE_URL: url(['postgresql:', 'postgres:']).default('postgresql://postgres@127.0.0.1:5432/segue'),
  REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379'),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  HOST: z.string().min(1).default('0.0.0.0'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Pretty logs for humans; JSON otherwise. Defaults to pretty outside production. */
  LOG_PRETTY: bool.optional(),
  GRAPHIQL: bool.optional(),
});

export type Config = Readonly<{
  env: 'development' | 'production' | 'test';
  databaseUrl: string;
  redisUrl: string;
  port: number;
  host: string;
  log: { level: string; pretty: boolean };
  graphiql: boolean;
}>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment; throws a ConfigError whose message is one line naming the bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Empty strings mean "unset", as in most .env tooling.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = issue.path.join('.');
    throw new ConfigError(`Invalid configuration: ${name}=${JSON.stringify(env[name] ?? '')} ${issue.message}`);
  }
  const c = parsed.data;
  return Object.freeze({
    env: c.NODE_ENV,
    databaseUrl: c.DATABASE_URL,
    redisUrl: c.REDIS_URL,
    port: c.PORT,
    host: c.HOST,
    log: { level: c.LOG_LEVEL, pretty: c.LOG_PRETTY ?? c.NODE_ENV === 'development' },
    graphiql: c.GRAPHIQL ?? c.NODE_ENV !== 'production',
  });
}
