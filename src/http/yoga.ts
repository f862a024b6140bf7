import { createYoga, type YogaServerInstance } from 'graphql-yoga';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createContext, type Context } from '../graphql/context.ts';
import { useAuthentication } from '../graphql/authentication.ts';
import { maskError, yogaLogger } from '../graphql/errors.ts';
import { schema } from '../graphql/schema.ts';
import type { Segue } from '../runtime.ts';

export type ServerContext = { req: IncomingMessage; res: ServerResponse };
export type Yoga = YogaServerInstance<ServerContext, Context>;

export function createYogaServer(segue: Segue): Yoga {
  return createYoga<ServerContext, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    graphiql: segue.config.graphiql ? { title: 'Segue GraphQL', defaultQuery: GRAPHIQL_QUERY } : false,
    landingPage: false,
    logging: yogaLogger(segue.logger.child({ component: 'graphql' })),
    maskedErrors: { maskError: (error) => maskError(error) },
    plugins: [useAuthentication()],
    // Over WebSocket there is no Fetch request: the authorization comes from connectionParams.
    context: ({ request, params }) =>
      createContext(
        segue,
        request?.headers.get('authorization') ??
          (params as { extensions?: { authorization?: string } } | undefined)?.extensions?.authorization,
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
