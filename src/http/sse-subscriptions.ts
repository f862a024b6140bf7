import type { IncomingMessage, ServerResponse } from 'node:http';
import { getCORSHeadersByRequestAndOptions, type CORSOptions } from '@whatwg-node/server';
import { getOperationAST, type ExecutionArgs, type ExecutionResult } from 'graphql';
import { contextOf, type Context, type ContextDeps } from '../graphql/context.ts';
import { untilCredentialEnds } from '../graphql/credential-lifetime.ts';
import { subscribeLive } from '../graphql/live-subscriptions.ts';
import type { SharedExecutions } from '../graphql/shared-executions.ts';
import { SSE_HEADERS, writeSse } from '../graphql/sse-results.ts';
import { envelopedOperation, type OperationParams } from './enveloped-operation.ts';
import type { ServerContext, Yoga } from './yoga.ts';

export interface SseRequestOptions {
  yoga: Yoga;
  deps: ContextDeps;
  shared: SharedExecutions;
  keepAliveMs: number;
  cors: CORSOptions | false;
  /** Where masked errors go (yogaLogger's error, as for Yoga's own). */
  log: { error(error: unknown): void };
}

/**
 * Requests for an event stream (after their setup turn, src/http/setup-turns.ts). Subscriptions
 * are served outside Yoga's request handling, as WebSocket ones are (src/http/websocket.ts): an
 * idle subscriber waits in every layer around its stream, and Yoga's (its fetch Request and
 * Response, the context it builds with the request in it, the envelop's wrappers of the stream)
 * cost an SSE subscriber about twice what a WebSocket one costs. Here the request is parsed and
 * validated by Yoga's envelop (the same schema, limits and caches), run by subscribeLive (the
 * same gate, masking and shared executions), kept no longer than its credential
 * (untilCredentialEnds, as useCredentialLifetime does), and written as sseResults writes it, with
 * the headers Yoga's processor and CORS would send.
 *
 * Only the plain case is served here: a subscription with a valid credential, whose parameters
 * Yoga would take as they are, that parses, validates and starts its stream. Everything else
 * (parameters Yoga refuses, a query or a mutation, a document that fails to parse or validate,
 * no credential or a refused one, a subscription refused before its stream starts) is Yoga's to
 * answer, as it always has been, with what was learned on the way handed to it so that nothing is
 * done twice: the credential's check (even one that failed), and the refusal of a subscription
 * (its resolvers ran, and what they logged is logged once).
 */
export function sseRequests(options: SseRequestOptions) {
  const { yoga, deps, shared, keepAliveMs, cors, log } = options;

  /** The stream to serve, or what Yoga is to be handed with the request. */
  async function prepare(req: IncomingMessage, params: OperationParams): Promise<Prepared> {
    // Checked before the key (nothing in it depends on who asks): a query or a refused document
    // costs no more than it did.
    const operation = envelopedOperation(yoga, undefined, params);
    if ('errors' in operation) return { yoga: {} };
    const { enveloped, document } = operation;
    // The operation as Yoga chooses it (none when several and no name says which).
    if (getOperationAST(document, params.operationName)?.operation !== 'subscription') return { yoga: {} };
    // Read as Yoga's server adapter reads it (req.headers, where Node kept the first of several).
    // Yoga is handed the check itself, failed or not: it never asks twice.
    const authenticating = deps.authenticator.authenticate(req.headers.authorization ?? null);
    const authentication = await authenticating.catch(() => null);
    if (!authentication?.principal) return { yoga: { authentication: authenticating } };
    const contextValue = contextOf(deps, authentication);
    const args = { schema: enveloped.schema, document, operationName: params.operationName, variableValues: params.variables, contextValue };
    const result = await subscribeLive(args as ExecutionArgs & { contextValue: Context }, log, shared);
    // Refused before it started (its variables, a batch not found, a scope): Yoga answers it, with its status.
    if (!(Symbol.asyncIterator in result)) return { yoga: { authentication, subscribed: result } };
    return { stream: result, contextValue };
  }

  return async function serve(req: IncomingMessage, res: ServerResponse, setUp: () => void): Promise<void> {
    const params = paramsOf(req);
    // A fault on the way (not the client's: those are refusals) is Yoga's to meet again and answer.
    const prepared: Prepared = params && acceptsAsIs(req) ? await prepare(req, params).catch(() => ({ yoga: {} })) : { yoga: {} };
    const gone = res.destroyed || req.socket.destroyed;
    if ('yoga' in prepared) {
      // The client left while it was looked at: nothing to answer (Yoga would set up a stream
      // that no one reads, its close long past).
      if (gone) return setUp();
      return void (await yoga(req, res, { req, res, setUp, ...prepared.yoga }));
    }
    const { stream: result, contextValue } = prepared;
    if (gone) {
      // Nobody will read it: it lets go of what it holds.
      void Promise.resolve(result.return?.()).catch(() => undefined);
      return setUp();
    }
    let stream: AsyncIterableIterator<ExecutionResult> | undefined;
    try {
      stream = untilCredentialEnds(result, contextValue);
      const corsHeaders = cors === false ? null : getCORSHeadersByRequestAndOptions(requestHeadersOf(req), cors);
      // As Yoga's server adapter sends a streamed body: no idle timeout, no delay, kept alive.
      req.socket.setTimeout(0);
      req.socket.setNoDelay(true);
      req.socket.setKeepAlive(true);
      res.writeHead(200, { ...SSE_HEADERS, ...corsHeaders });
      forgetRequest(req);
      writeSse(stream, res, { keepAliveMs, connection: res, setUp, log });
    } catch (error) {
      // Nothing was sent (or only its head): the subscription ends, letting go of its place (and
      // of its credential's watch once that is taken: ending the outer stream ends both), and the
      // request is answered as any request that failed.
      const started = stream ?? result;
      void Promise.resolve(started.return?.()).catch(() => undefined);
      throw error;
    }
  };
}

type Prepared =
  | { stream: AsyncIterableIterator<ExecutionResult>; contextValue: Context }
  | { yoga: Pick<ServerContext, 'authentication' | 'subscribed'> };

/** Media types Yoga takes as they are here: any other charset than UTF-8, or graphql-sse's single connection mode, is Yoga's to answer. */
function acceptsAsIs(req: IncomingMessage): boolean {
  return !/charset/i.test(req.headers.accept ?? '') && req.headers['x-graphql-event-stream-token'] === undefined;
}

/**
 * The request's GraphQL parameters, as Yoga's GET and JSON POST parsers would read them, when
 * Yoga would take them as they are (checkGraphQLQueryParams); null for anything else. A POST's
 * body is the object serveInTurn parsed (bodyForYoga): a body it left as a stream is Yoga's.
 */
function paramsOf(req: IncomingMessage): OperationParams | null {
  const url = req.url ?? '';
  const mark = url.indexOf('?');
  if ((mark === -1 ? url : url.slice(0, mark)) !== '/graphql') return null;
  const search = mark === -1 ? '' : url.slice(mark + 1);
  let raw: Record<string, unknown>;
  if (req.method === 'GET') {
    const query = new URLSearchParams(search);
    try {
      raw = {
        query: query.get('query') || undefined,
        operationName: query.get('operationName') || undefined,
        variables: jsonParam(query.get('variables')),
        extensions: jsonParam(query.get('extensions')),
      };
    } catch {
      return null;
    }
  } else if (req.method === 'POST') {
    const body = (req as IncomingMessage & { body?: unknown }).body;
    if (!isPlainObject(body)) return null;
    raw = body;
  } else return null;
  const { query, operationName, variables, extensions } = raw;
  if (typeof query !== 'string' || query === '') return null;
  if (operationName != null && typeof operationName !== 'string') return null;
  if (variables != null && !isPlainObject(variables)) return null;
  if (extensions != null && !isPlainObject(extensions)) return null;
  return { query, operationName, variables, extensions } as OperationParams;
}

/**
 * What the request no longer needs once its stream is up, which Node keeps with it for the
 * stream's life (hours, for a dashboard left open): the secret it was authenticated with (a
 * WebSocket connection keeps who it is, not its key, src/http/websocket.ts), and its parsed body.
 */
function forgetRequest(req: IncomingMessage) {
  delete req.headers.authorization;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() === 'authorization') req.rawHeaders[i + 1] = '';
  }
  delete (req as IncomingMessage & { body?: unknown }).body;
}

const jsonParam = (value: string | null): unknown => (value ? JSON.parse(value) : undefined);

/** An object as a JSON body parses to (not an array, not a stream). */
const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as { pipe?: unknown }).pipe !== 'function';

/**
 * The request's headers as CORS reads them from the fetch Request Yoga's server adapter would
 * make of req.headers (not headersDistinct: Node keeps that copy on the request once asked for).
 */
const requestHeadersOf = (req: IncomingMessage) =>
  ({
    headers: {
      get: (name: string) => {
        const value = req.headers[name.toLowerCase()];
        return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
      },
    },
  }) as unknown as Request;
