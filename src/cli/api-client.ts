import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print, type GraphQLFormattedError } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

/** A GraphQL error from the API, with its code: the CLI prints it and exits 1. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly errors: readonly GraphQLFormattedError[] = [],
  ) {
    super(message);
  }
}

/** The API as any client sees it: typed operations over HTTP, subscriptions over graphql-ws. */
export class ApiClient {
  private ws: Client | null = null;

  constructor(
    readonly url: string,
    private readonly apiKey: string,
  ) {}

  async request<TData, TVariables>(document: TypedDocumentNode<TData, TVariables>, variables: TVariables): Promise<TData> {
    let response: Response;
    try {
      response = await fetch(`${this.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${this.apiKey}` },
        body: JSON.stringify({ query: print(document), variables }),
      });
    } catch (error) {
      throw new ApiError(`Cannot reach the Segue API at ${this.url}: ${(error as Error).message}`, 'UNREACHABLE');
    }
    const body = (await response.json().catch(() => null)) as { data?: TData; errors?: GraphQLFormattedError[] } | null;
    if (!body) throw new ApiError(`The API answered ${response.status} without JSON.`, 'INTERNAL');
    if (body.errors?.length) {
      const first = body.errors[0]!;
      throw new ApiError(first.message, first.extensions?.code as string | undefined, body.errors);
    }
    return body.data as TData;
  }

  /** Runs a subscription, calling `onEvent` for each event, until the server completes it. */
  subscribe<TData, TVariables>(
    document: TypedDocumentNode<TData, TVariables>,
    variables: TVariables,
    onEvent: (data: TData) => void,
  ): Promise<void> {
    this.ws ??= createClient({
      url: this.url.replace(/^http/, 'ws') + '/graphql',
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${this.apiKey}` },
      retryAttempts: 5,
    });
    return new Promise((resolve, reject) => {
      this.ws!.subscribe<TData>(
        { query: print(document), variables: variables as Record<string, unknown> },
        {
          next: (result) => {
            if (result.errors?.length) {
              const first = result.errors[0]!;
              reject(new ApiError(first.message, first.extensions?.code as string | undefined, result.errors));
            } else if (result.data) onEvent(result.data);
          },
          error: (error) => {
            if (Array.isArray(error)) {
              const first = error[0] as GraphQLFormattedError;
              reject(new ApiError(first.message, first.extensions?.code as string | undefined, error));
            } else reject(new ApiError(`Subscription failed: ${String((error as { reason?: string }).reason ?? error)}`, 'UNREACHABLE'));
          },
          complete: () => resolve(),
        },
      );
    });
  }

  async close() {
    await this.ws?.dispose();
  }
}
