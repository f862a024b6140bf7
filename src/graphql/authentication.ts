import {
  GraphQLError,
  Kind,
  type DocumentNode,
  type ExecutionResult,
  type FieldNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { forbidden, unauthenticated, type AppError } from '../domain/errors.ts';
import type { Context } from './context.ts';
import { operationOf, refuseBeforeRunning, type OperationArgs } from './operation-gate.ts';

const PUBLIC_FIELDS = new Set(['__schema', '__type', '__typename']);

/**
 * What a browser token may call: reads and subscriptions of one batch or transition. Anything
 * else (mutations, viewer, queueStats, other lists) is FORBIDDEN; ids outside the token's scope
 * are NOT_FOUND in the resolvers (src/auth/scope.ts).
 */
const TOKEN_FIELDS: Record<OperationDefinitionNode['operation'], Set<string>> = {
  query: new Set(['batch', 'transition', 'node', 'transitions']),
  subscription: new Set(['transitionUpdated', 'batchProgress']),
  mutation: new Set(),
};

const TOKEN_FORBIDDEN =
  'A browser token can only read and follow the batch or transition it was made for (batch, transition, node, transitions, transitionUpdated, batchProgress).';

/** The root fields an operation selects, through fragments and inline fragments. */
function rootFields(document: DocumentNode, operation: OperationDefinitionNode): FieldNode[] {
  const fragments = new Map(
    document.definitions.flatMap((d) => (d.kind === Kind.FRAGMENT_DEFINITION ? [[d.name.value, d] as const] : [])),
  );
  const fields: FieldNode[] = [];
  const visit = (set: SelectionSetNode, seen: Set<string>) => {
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) fields.push(selection);
      else if (selection.kind === Kind.INLINE_FRAGMENT) visit(selection.selectionSet, seen);
      else if (!seen.has(selection.name.value)) {
        seen.add(selection.name.value);
        const fragment = fragments.get(selection.name.value);
        if (fragment) visit(fragment.selectionSet, seen);
      }
    }
  };
  visit(operation.selectionSet, new Set());
  return fields;
}

/**
 * Every field but the schema itself needs a credential, and a browser token reaches only a few.
 * Checked once per operation, before any resolver runs, so no field can forget it; each refused
 * root field gets its error (UNAUTHENTICATED without a valid credential, FORBIDDEN for a token).
 */
export function useAuthentication(): Plugin<Context> {
  return refuseBeforeRunning(authenticationRefusal);
}

/** The refusal of an operation the caller may not run (null: it may). */
export function authenticationRefusal(args: OperationArgs): ExecutionResult | null {
  const { principal, authFailure } = args.contextValue;
  if (principal && principal.kind !== 'token') return null;
  const operation = operationOf(args.document, args.operationName);
  if (!operation) return null;
  const allowed = principal ? TOKEN_FIELDS[operation.operation] : new Set<string>();
  const denied = rootFields(args.document, operation).filter((f) => !PUBLIC_FIELDS.has(f.name.value) && !allowed.has(f.name.value));
  if (denied.length === 0) return null;
  const error: AppError = principal ? forbidden(TOKEN_FORBIDDEN) : unauthenticated(authFailure ?? undefined);
  return {
    data: null,
    errors: denied.map(
      (field) =>
        new GraphQLError(error.message, {
          nodes: [field],
          path: [field.alias?.value ?? field.name.value],
          extensions: { code: error.code },
        }),
    ),
  };
}
