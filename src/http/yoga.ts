import type { CORSOptions } from '@whatwg-node/server';
import { createYoga, type YogaServerInstance } from 'graphql-yoga';
import type { ExecutionResult } from 'graphql';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { useAuthentication } from '../graphql/authentication.ts';
import { useCredentialLifetime } from '../graphql/credential-lifetime.ts';
import {
  useIntrospectionSwitch,
  useMutationRateLimit,
  useOperationMetrics,
  useQueryLimits,
  useQueryStringJson,
  useValidationErrorCode,
  type RateLimiter,
} from '../graphql/hardening.ts';
import type { Authentication } from '../auth/principal.ts';
import { contextOf, createContext, type Context, type ContextDeps } from '../graphql/context.ts';
import { maskError, yogaLogger } from '../graphql/errors.ts';
import { schema } from '../graphql/schema.ts';
import { graphiqlOptions, renderGraphiQLPage, useGraphiQLPolicy } from './graphiql/page.ts';
import { useStreamingUploads } from '../graphql/uploads.ts';
import { useLiveSubscriptions } from '../graphql/live-subscriptions.ts';
import type { SharedExecutions } from '../graphql/shared-executions.ts';

export type ServerContext = {
  req?: IncomingMessage;
  res?: ServerResponse;
  /**
   * The caller's authentication when it is checked already (not its key): a WebSocket
   * connection's, checked once when it connected; an SSE request's, checked on its way to be
   * served directly (src/http/sse-subscriptions.ts), as it is (a failed check fails here too).
   */
  authentication?: Authentication | Promise<Authentication>;
  /** Over SSE: the refusal a subscription got on its way to be served directly, answered as it is rather than subscribed again. */
  subscribed?: ExecutionResult;
  /** Over SSE: ends the request's setup turn (see serveInTurn), once its stream's first event is out. */
  setUp?: () => void;
};
export type Yoga = YogaServerInstance<ServerContext, Context>;

/** Who may call from a browser on another origin (CORS_ORIGINS): Yoga's answers and those written beside it alike. */
export function corsOptions(http: { corsOrigins: '*' | string[] | null }): CORSOptions | false {
  if (http.corsOrigins === null) return false;
  return {
    origin: http.corsOrigins === '*' ? '*' : http.corsOrigins,
    methods: ['GET', 'POST'],
    allowedHeaders: ['authorization', 'content-type', 'accept'],
    credentials: false,
  };
}

export function createYogaServer(deps: ContextDeps, limiter: RateLimiter | null, shared: SharedExecutions): Yoga {
  const { segue } = deps;
  const { http } = segue.config;
  const logging = yogaLogger(segue.logger.child({ component: 'graphql' }));
  return createYoga<ServerContext, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    graphiql: segue.config.graphiql ? graphiqlOptions(segue.config) : false,
    renderGraphiQL: renderGraphiQLPage,
    landingPage: false,
    logging,
    maskedErrors: { maskError: (error) => maskError(error) },
    plugins: [
      useStreamingUploads({ maxFileBytes: segue.config.images.maxBytes }),
      useValidationErrorCode(),
      useQueryStringJson(),
      useQueryLimits(segue.config),
      useIntrospectionSwitch({ enabled: http.introspection, forAccounts: segue.config.graphiql }),
      useAuthentication(),
      useCredentialLifetime(),
      useMutationRateLimit(limiter),
      useOperationMetrics(segue.metrics),
      useGraphiQLPolicy(),
      useLiveSubscriptions(logging, shared, segue.config.subscriptions.keepAliveMs),
    ],
    cors: corsOptions(http),
    // HTTP and SSE carry the credential in the Authorization header; a WebSocket connection
    // checked its own when it connected (websocket.ts) and passes the authentication.
    context: async ({ request, authentication }) =>
      authentication ? contextOf(deps, await authentication) : createContext(deps, request?.headers.get('authorization') ?? null),
  });
}
