import { createYoga, type YogaServerInstance } from 'graphql-yoga';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SubscriptionLimits } from '../events/limits.ts';
import { useAuthentication } from '../graphql/authentication.ts';
import {
  useIntrospectionSwitch,
  useMutationRateLimit,
  useOperationMetrics,
  useQueryLimits,
  useValidationErrorCode,
  type RateLimiter,
} from '../graphql/hardening.ts';
import { createContext, type Context } from '../graphql/context.ts';
import { maskError, yogaLogger } from '../graphql/errors.ts';
import { schema } from '../graphql/schema.ts';
import { useStreamingUploads } from '../graphql/uploads.ts';
import type { Segue } from '../runtime.ts';

export type ServerContext = {
  req: IncomingMessage;
  res?: ServerResponse;
  /** Set for operations over WebSocket (graphql-ws). */
  connectionParams?: Record<string, unknown> | undefined;
};
export type Yoga = YogaServerInstance<ServerContext, Context>;

export function createYogaServer(segue: Segue, subscriptions: SubscriptionLimits, limiter: RateLimiter | null): Yoga {
  const { http } = segue.config;
  return createYoga<ServerContext, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    graphiql: segue.config.graphiql
      ? { title: 'Segue GraphQL', defaultQuery: GRAPHIQL_QUERY, subscriptionsProtocol: 'WS' }
      : false,
    landingPage: false,
    logging: yogaLogger(segue.logger.child({ component: 'graphql' })),
    maskedErrors: { maskError: (error) => maskError(error) },
    plugins: [
      useStreamingUploads({ maxFileBytes: segue.config.images.maxBytes }),
      useValidationErrorCode(),
      useQueryLimits(segue.config),
      useIntrospectionSwitch(http.introspection),
      useAuthentication(),
      useMutationRateLimit(limiter),
      useOperationMetrics(segue.metrics),
    ],
    cors:
      http.corsOrigins === null
        ? false
        : {
            origin: http.corsOrigins === '*' ? '*' : http.corsOrigins,
            methods: ['GET', 'POST'],
            allowedHeaders: ['authorization', 'content-type', 'accept'],
            credentials: false,
          },
    // HTTP and SSE carry the key in the Authorization header; WebSocket in connectionParams
    // (there is no Fetch request over WebSocket).
    context: ({ request, connectionParams }) =>
      createContext(
        segue,
        subscriptions,
        request?.headers.get('authorization') ?? (connectionParams?.authorization as string | undefined) ?? null,
      ),
  });
}

const GRAPHIQL_QUERY = `# Send your API key as a header: {"Authorization": "Bearer sg_..."}
query Recent {
  viewer { name }
  transitions(first: 10) {
    edges { node { id status prompt videoUrl error { code message } } }
  }
}
`;
