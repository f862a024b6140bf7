import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { GraphQLError, NoSchemaIntrospectionCustomRule, validate } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Config } from '../config.ts';
import type { Metrics } from '../metrics.ts';
import type { Context } from './context.ts';
import { operationOf, refuseBeforeRunning, type OperationArgs } from './operation-gate.ts';

/** Depth, cost, alias, token and directive limits (graphql-armor); field suggestions hidden. */
export function useQueryLimits(config: Config): Plugin {
  const { limits } = config.http;
  return EnvelopArmorPlugin({
    maxDepth: { n: limits.depth, ignoreIntrospection: true },
    maxAliases: { n: limits.aliases },
    maxTokens: { n: limits.tokens },
    costLimit: { maxCost: limits.cost },
    maxDirectives: { n: 50 },
    blockFieldSuggestion: { enabled: config.env === 'production' },
  }) as Plugin;
}

/**
 * Who may read the schema through introspection (`__schema`, `__type`):
 * - INTROSPECTION=true (the default outside production): anyone, as GraphQL tools expect;
 * - INTROSPECTION=false with GraphiQL on (`forAccounts`): callers with a valid API key only, so
 *   GraphiQL's docs and autocompletion work once a key is in its headers; anonymous callers never;
 * - both off: nobody (checked while validating, before anything runs).
 * The key is only known once the context is built (after validation), so the middle case is
 * checked just before execution, with the same rule; its message says how to send a key.
 */
export function useIntrospectionSwitch(options: { enabled: boolean; forAccounts: boolean }): Plugin<Context> {
  if (options.enabled) return {};
  if (!options.forAccounts) {
    return {
      onValidate({ addValidationRule }) {
        addValidationRule(NoSchemaIntrospectionCustomRule);
      },
    };
  }
  const check = (args: OperationArgs) => {
    if (args.contextValue.principal) return null;
    const [first] = validate(args.schema, args.document, [NoSchemaIntrospectionCustomRule]);
    if (!first) return null;
    // One error, not one per introspection field the rule flags (GraphiQL's query has dozens).
    return {
      errors: [
        new GraphQLError(
          'GraphQL introspection needs an API key here: send the header {"Authorization": "Bearer sg_..."}.',
          { nodes: first.nodes, extensions: { code: 'BAD_USER_INPUT' } },
        ),
      ],
    };
  };
  return refuseBeforeRunning(check);
}

export interface RateLimiter {
  /** Seconds until the account may try again, or 0 when this call is allowed. */
  take(accountId: string): Promise<number>;
}

/** Mutations per account per minute (RATE_LIMITED with retryAfter seconds beyond it). */
export function useMutationRateLimit(limiter: RateLimiter | null): Plugin<Context> {
  if (!limiter) return {};
  return {
    async onExecute({ args, setResultAndStopExecution }) {
      const context = args.contextValue;
      if (!context.principal || operationOf(args.document, args.operationName)?.operation !== 'mutation') return;
      const retryAfter = await limiter.take(context.principal.accountId);
      if (retryAfter > 0) {
        setResultAndStopExecution({
          data: null,
          errors: [
            new GraphQLError(`Too many mutations; try again in ${retryAfter} s.`, {
              extensions: { code: 'RATE_LIMITED', retryAfter },
            }),
          ],
        });
      }
    },
  };
}

/** GraphQL operation durations by operation type, for /metrics. */
export function useOperationMetrics(metrics: Metrics): Plugin {
  return {
    onExecute({ args }) {
      const type = operationOf(args.document, args.operationName)?.operation ?? 'unknown';
      if (type === 'subscription') return;
      const end = metrics.graphqlDuration.startTimer({ operation: type });
      return { onExecuteDone: () => void end() };
    },
  };
}

/**
 * Validation errors (unknown fields, limits, introspection when off) are the client's mistakes:
 * they carry BAD_USER_INPUT like every other input error, not Yoga's GRAPHQL_VALIDATION_FAILED.
 */
export function useValidationErrorCode(): Plugin {
  return {
    onValidate() {
      return ({ valid, result }) => {
        if (valid) return;
        for (const error of result) {
          (error as { extensions: Record<string, unknown> }).extensions ??= {};
          (error.extensions as Record<string, unknown>).code = 'BAD_USER_INPUT';
        }
      };
    },
  };
}

/**
 * A GET request whose `variables` or `extensions` parameter is not JSON: the client's mistake,
 * answered 400 BAD_USER_INPUT as a POST body that is not JSON is. (Yoga's GET parser lets
 * JSON.parse's SyntaxError through, which became a 200 INTERNAL, logged as an unexpected error.)
 */
export function useQueryStringJson(): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser }) {
      if (request.method !== 'GET' || !requestParser) return;
      setRequestParser(async (req) => {
        try {
          return await requestParser(req);
        } catch (error) {
          if (!(error instanceof SyntaxError)) throw error;
          throw new GraphQLError('The query string sent invalid JSON in variables or extensions.', {
            extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } },
          });
        }
      });
    },
  };
}
