import { GraphQLError } from 'graphql';
import { ERROR_CODES, isAppError } from '../domain/errors.ts';
import type { Logger } from '../logger.ts';

/**
 * graphql-js reports bad variables as text, e.g.
 * `Variable "$input" got invalid value ... at "input.transitions[0]"; Field "prompt" of required type
 * "String!" was not provided.` These are the client's input mistakes: name the field they concern.
 */
function inputFieldFromMessage(message: string): string | null {
  const at = /^Variable "\$\w+" got invalid value .*? at "\w+((?:\.\w+|\[\d+\])*)";/s.exec(message)?.[1] ?? '';
  const field = /Field "(\w+)" (?:of required type|is not defined)/.exec(message)?.[1];
  const literalField = /Field "\w+\.(\w+)" of required type/.exec(message)?.[1];
  const path = (at.replace(/\[(\d+)\]/g, '.$1') + (field ? `.${field}` : '')).replace(/^\./, '');
  if (path) return path;
  if (literalField) return literalField;
  if (/^Variable "\$\w+"/.test(message)) return '';
  return null;
}

const isInputError = (message: string) =>
  /^Variable "\$/.test(message) ||
  /^(Int|Float|String|Boolean|ID|DateTime) cannot represent/.test(message) ||
  /^Expected value of type /.test(message) ||
  /^Field "\w+\.\w+" of required type .* was not provided\./.test(message) ||
  /^Field "\w+" is not defined by type /.test(message);

/**
 * Turns every error into one of the documented codes. AppErrors keep their code and details;
 * input errors from graphql-js become BAD_USER_INPUT; anything unexpected becomes INTERNAL with a
 * generic message (the real one goes to the log, never to the client).
 */
// Duck-typed: graphql can be loaded twice (its ESM and CJS builds), and instanceof then fails.
export const asGraphQLError = (error: unknown): GraphQLError | null =>
  error instanceof Error && error.name === 'GraphQLError' ? (error as GraphQLError) : null;

export function maskError(error: unknown): Error {
  {
    const graphqlError = asGraphQLError(error);
    const original = graphqlError?.originalError ?? (graphqlError ? null : error);

    if (isAppError(original)) {
      return new GraphQLError(original.message, {
        nodes: graphqlError?.nodes,
        path: graphqlError?.path,
        extensions: { code: original.code, ...original.details },
      });
    }
    if (graphqlError && (!original || asGraphQLError(original))) {
      const message = graphqlError.message;
      if (isInputError(message)) {
        const field = inputFieldFromMessage(message);
        return new GraphQLError(message, {
          nodes: graphqlError.nodes,
          path: graphqlError.path,
          extensions: { ...graphqlError.extensions, code: 'BAD_USER_INPUT', fields: field ? [field] : [] },
        });
      }
      const code = graphqlError.extensions?.code;
      if (typeof code === 'string' && (ERROR_CODES as readonly string[]).includes(code)) return graphqlError;
      // Syntax and validation errors of the operation itself (unknown fields, query limits), and
      // requests Yoga refuses (bad JSON, a mutation over GET): the client's mistake, already safe
      // to show. Yoga's `http` extension stays: it sets the response's status (400, 405) and is
      // never sent to the client; without it every such error was a 200 (GraphQL over HTTP).
      if (!graphqlError.path) {
        return new GraphQLError(message, {
          nodes: graphqlError.nodes,
          extensions: { ...graphqlError.extensions, code: 'BAD_USER_INPUT' },
        });
      }
    }
    if (isOutage(original)) {
      return new GraphQLError('A service Segue depends on is unavailable; try again shortly.', {
        nodes: graphqlError?.nodes,
        path: graphqlError?.path,
        extensions: { code: 'UNAVAILABLE' },
      });
    }
    return new GraphQLError('Internal error. It has been logged.', {
      nodes: graphqlError?.nodes,
      path: graphqlError?.path,
      extensions: { code: 'INTERNAL' },
    });
  }
}

const OUTAGE_CODES = new Set([
  'P1001', // Prisma: can't reach database server
  'P1002', // Prisma: database server timed out
  'P1017', // Prisma: server closed the connection
  'P2024', // Prisma: timed out fetching a connection from the pool
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  '57P01', // PostgreSQL: admin shutdown
  '57P02',
  '57P03', // PostgreSQL: cannot connect now (starting up)
]);

/** PostgreSQL or Redis not answering: a passing outage the client can wait out, not a bug. */
export function isOutage(error: unknown): boolean {
  for (let e = error as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown } | null, depth = 0; e && depth < 5; depth++) {
    if (typeof e.code === 'string' && OUTAGE_CODES.has(e.code)) return true;
    const message = typeof e.message === 'string' ? e.message : '';
    // pg-pool's "timeout exceeded when trying to connect": every connection busy past its wait;
    // ioredis' "Command timed out": a Redis that keeps its connection and answers nothing.
    if (/Connection terminated|Can't reach database|Connection is closed|Stream isn't writeable|Redis is not reachable|Command timed out|MaxRetriesPerRequest|timeout exceeded when trying to connect/i.test(message)) {
      return true;
    }
    if ((e as { name?: unknown }).name === 'MaxRetriesPerRequestError') return true;
    e = (e.cause ?? null) as typeof e;
  }
  return false;
}

/** True for errors that are the client's doing (typed codes, bad input), which need no error log. */
export function isExpectedError(error: unknown): boolean {
  if (isAppError(error)) return true;
  const graphqlError = asGraphQLError(error);
  if (!graphqlError) return false;
  const original = graphqlError.originalError;
  if (isAppError(original)) return true;
  const own = !original || asGraphQLError(original) !== null;
  // An error of the operation itself (syntax, validation, limits) has no path.
  return own && (isInputError(graphqlError.message) || !graphqlError.path);
}

/**
 * Yoga logs every error it masks. Expected errors go to debug; the rest (bugs, outages) stay at
 * error level with their stack, for operators.
 */
export function yogaLogger(logger: Logger) {
  return {
    debug: (...args: unknown[]) => logger.debug({ args }, 'yoga'),
    info: (...args: unknown[]) => logger.info({ args }, 'yoga'),
    warn: (...args: unknown[]) => logger.warn({ args }, 'yoga'),
    error: (...args: unknown[]) => {
      const [first] = args;
      if (isExpectedError(first)) logger.debug({ err: first }, 'request error');
      else if (isOutage(asGraphQLError(first)?.originalError ?? first)) logger.warn({ err: asGraphQLError(first)?.originalError ?? first }, 'dependency unavailable');
      else logger.error({ err: asGraphQLError(first)?.originalError ?? first }, 'unexpected error');
    },
  };
}
