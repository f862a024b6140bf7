import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print, type ExecutionResult, type GraphQLFormattedError } from 'graphql';
import { loadConfig, type Config } from '../../src/config.ts';
import { createAccount } from '../../src/domain/accounts.ts';
import { startApiServer, type ApiServerOptions } from '../../src/http/server.ts';
import type { Logger } from '../../src/logger.ts';
import { createSegue, type Segue } from '../../src/runtime.ts';

export type Overrides = Record<string, string | undefined>;

export function testConfig(overrides: Overrides = {}): Config {
  return loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1', ...overrides });
}

export interface TestApp {
  segue: Segue;
  url: string;
  graphqlUrl: string;
  /** The node:http server, for tests that look at the requests it is given. */
  server: import('node:http').Server;
  close(): Promise<void>;
}

/** The real API (Yoga on node:http) on a random port, against the test database. */
export async function startTestApp(overrides: Overrides = {}, options: { logger?: Logger } & ApiServerOptions = {}): Promise<TestApp> {
  const { logger, ...serverOptions } = options;
  const segue = createSegue(testConfig(overrides), logger ? { logger } : {});
  const api = await startApiServer(segue, serverOptions);
  return {
    segue,
    url: api.url,
    graphqlUrl: `${api.url}/graphql`,
    server: api.server,
    async close() {
      await api.close();
      await segue.close();
    },
  };
}

/**
 * Segue with no generation queue behind it: transitions are made and changed as the API does,
 * and no job is queued for them (a test that drives their states itself, with no worker).
 */
export const withoutJobs = (segue: Segue) =>
  ({ ...segue, generationJobs: { enqueue: async () => undefined, removeWaiting: async () => undefined } as never }) as Segue;

export interface TestAccount {
  id: string;
  apiKey: string;
}

let accounts = 0;
export async function createTestAccount(segue: Segue, name = `test-${process.pid}-${++accounts}`): Promise<TestAccount> {
  const { account, apiKey } = await createAccount(segue.db, name);
  return { id: account.id, apiKey };
}

export interface GraphQLResponse<T> {
  status: number;
  data: T | null | undefined;
  errors: GraphQLFormattedError[] | undefined;
}

/** A typed GraphQL-over-HTTP client call (POST, JSON), as any frontend would make it. */
export async function gql<TData, TVariables>(
  graphqlUrl: string,
  apiKey: string | null,
  document: TypedDocumentNode<TData, TVariables>,
  ...[variables]: TVariables extends Record<string, never> ? [] : [TVariables]
): Promise<GraphQLResponse<TData>> {
  const response = await fetch(graphqlUrl, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
    },
    body: JSON.stringify({ query: print(document), variables }),
  });
  const body = (await response.json()) as ExecutionResult<TData>;
  return { status: response.status, data: body.data, errors: body.errors as GraphQLFormattedError[] | undefined };
}

/** The codes of a response's errors, for terse assertions. */
export const codes = (response: { errors?: readonly GraphQLFormattedError[] | undefined }) =>
  (response.errors ?? []).map((e) => e.extensions?.code);
