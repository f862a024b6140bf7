import { GraphQLError, type DocumentNode } from 'graphql';
import type { Authentication } from '../auth/principal.ts';
import { asGraphQLError, maskError } from '../graphql/errors.ts';
import type { Yoga } from './yoga.ts';

/** What a GraphQL request asks (GraphQL over HTTP's parameters, a graphql-ws subscribe message's payload). */
export interface OperationParams {
  query: string;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
  extensions?: Record<string, unknown> | null;
}

/**
 * An operation parsed and validated by Yoga's envelop (the same schema, limits and caches as
 * Yoga's own HTTP handling): what the operations served outside Yoga's request handling run
 * (every one over WebSocket, subscriptions over SSE). Or the errors that refuse it. Nothing here
 * depends on who asks: `authentication` (a WebSocket connection's) is only kept in the context
 * Yoga's contextFactory builds, and an SSE request is checked before its key is.
 */
export function envelopedOperation(
  yoga: Yoga,
  authentication: Authentication | undefined,
  params: OperationParams,
): { enveloped: ReturnType<Yoga['getEnveloped']>; document: DocumentNode } | { errors: readonly GraphQLError[] } {
  const enveloped = yoga.getEnveloped({ authentication, params });
  let document: DocumentNode;
  let errors: readonly GraphQLError[];
  try {
    document = enveloped.parse(params.query);
    errors = enveloped.validate(enveloped.schema, document);
  } catch (error) {
    // A syntax error, or a query limit (graphql-armor's rules throw from validation, where Yoga
    // catches them): the client's mistake, answered as Yoga answers it over HTTP (BAD_USER_INPUT),
    // never an error of the connection. Anything else is a fault of the server's, thrown.
    const refused = asGraphQLError(error);
    const shown = refused && (maskError(refused) as GraphQLError);
    if (shown?.extensions.code !== 'BAD_USER_INPUT') throw error;
    return { errors: [withoutHttp(shown)] };
  }
  if (errors.length > 0) return { errors: errors.map(withoutHttp) };
  return { enveloped, document };
}

/**
 * The error without Yoga's `http` extension (a status for HTTP answers, never sent): Yoga's
 * caches hand out the same error objects to every request of the same text, and its HTTP
 * handling adds the extension to them in place.
 */
function withoutHttp(error: GraphQLError): GraphQLError {
  if (!error.extensions?.http) return error;
  const { http: _, ...extensions } = error.extensions;
  return new GraphQLError(error.message, { nodes: error.nodes, source: error.source, positions: error.positions, path: error.path, originalError: error.originalError, extensions });
}
