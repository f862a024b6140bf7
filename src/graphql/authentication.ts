import {
  GraphQLError,
  Kind,
  type DocumentNode,
  type FieldNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { unauthenticated } from '../domain/errors.ts';
import type { Context } from './context.ts';

const PUBLIC_FIELDS = new Set(['__schema', '__type', '__typename']);

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
 * Every field but the schema itself needs an account. Checked once per operation, before any
 * resolver runs, so no field can forget it; each protected root field gets an UNAUTHENTICATED.
 */
export function useAuthentication(): Plugin<Context> {
  const check = (args: { document: DocumentNode; operationName?: string | null; contextValue: Context }) => {
    if (args.contextValue.account) return null;
    const operations = args.document.definitions.filter(
      (d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION,
    );
    const operation = args.operationName
      ? operations.find((o) => o.name?.value === args.operationName)
      : operations[0];
    if (!operation) return null;
    const denied = rootFields(args.document, operation).filter((f) => !PUBLIC_FIELDS.has(f.name.value));
    if (denied.length === 0) return null;
    const error = unauthenticated();
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
  };
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const result = check(args);
      if (result) setResultAndStopExecution(result);
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const result = check(args);
      if (result) setResultAndStopExecution(result);
    },
  };
}
