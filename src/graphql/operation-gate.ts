import { Kind, type DocumentNode, type ExecutionResult, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Context } from './context.ts';

/** What a gate sees of a request: the parsed document and the built context. */
export interface OperationArgs {
  schema: GraphQLSchema;
  document: DocumentNode;
  operationName?: string | null;
  contextValue: Context;
}

/** The operation a request runs: the one it names, or the first. */
export const operationOf = (document: DocumentNode, name?: string | null) =>
  document.definitions.find(
    (d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION && (!name || d.name?.value === name),
  );

/**
 * Answers a query, mutation or subscription with `refusal`'s result instead of running it, when
 * it gives one. Checked once the context is built (the caller is known) and before any resolver.
 */
export function refuseBeforeRunning(refusal: (args: OperationArgs) => ExecutionResult | null): Plugin<Context> {
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const result = refusal(args);
      if (result) setResultAndStopExecution(result);
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const result = refusal(args);
      if (result) setResultAndStopExecution(result);
    },
  };
}
