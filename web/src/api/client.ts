import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print, type DocumentNode } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import { ApiError, apiErrorFrom, networkError, type GraphQLErrorLike } from './errors';

/** The API is served from the console's own origin: GraphQL over HTTP and WebSocket at /graphql. */
const GRAPHQL_PATH = '/graphql';

export interface SubscriptionObserver<TData> {
  next(data: TData): void;
  error(error: ApiError): void;
  /** The server ended the stream (a batch stream ends with its batch). */
  complete(): void;
}

/** A signed-in connection to Segue: typed requests over HTTP, typed subscriptions over graphql-ws. */
export interface Api {
  request<TData, TVariables>(document: TypedDocumentNode<TData, TVariables>, variables: TVariables): Promise<TData>;
  /** Returns the function that stops the subscription; the observer hears nothing after it. */
  subscribe<TData, TVariables>(
    document: TypedDocumentNode<TData, TVariables>,
    variables: TVariables,
    observer: SubscriptionObserver<TData>,
  ): () => void;
  /**
   * Sends a GraphQL multipart request (one file as `variables.file`), reporting upload progress:
   * fetch cannot tell how much of a body went out, XMLHttpRequest can.
   */
  upload<TData, TVariables>(
    document: TypedDocumentNode<TData, TVariables>,
    file: File,
    onProgress: (sent: number, total: number) => void,
    signal?: AbortSignal,
  ): Promise<TData>;
  /** Closes the WebSocket (on sign-out). */
  close(): void;
}

interface ExecutionResultLike<TData> {
  data?: TData | null;
  errors?: readonly GraphQLErrorLike[];
}

// The typed documents are ASTs; print each one once.
const printed = new WeakMap<DocumentNode, string>();
function queryText(document: DocumentNode): string {
  let text = printed.get(document);
  if (text === undefined) {
    text = print(document);
    printed.set(document, text);
  }
  return text;
}

/** graphql-ws closes with 4403 when the credential is refused, revoked or expired: retrying cannot help. */
const isForbiddenClose = (event: unknown) => (event as { code?: unknown } | null)?.code === 4403;

/** `credential`: an API key, or a browser token (createAccessToken) for a shared read-only view. */
export function createApi(credential: string, origin: Pick<Location, 'protocol' | 'host'> = window.location): Api {
  const authorization = `Bearer ${credential}`;
  let socket: Client | null = null;

  // One WebSocket for all subscriptions, opened on the first one (graphql-ws is lazy by default)
  // and kept a few seconds after the last, so moving between batches does not reconnect.
  const ws = () =>
    (socket ??= createClient({
      url: `${origin.protocol === 'https:' ? 'wss' : 'ws'}://${origin.host}${GRAPHQL_PATH}`,
      connectionParams: { authorization },
      lazyCloseTimeout: 5_000,
      retryAttempts: 5,
      shouldRetry: (event) => !isForbiddenClose(event),
    }));

  return {
    async request(document, variables) {
      let response: Response;
      try {
        response = await fetch(GRAPHQL_PATH, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/graphql-response+json, application/json',
            authorization,
          },
          body: JSON.stringify({ query: queryText(document), variables }),
        });
      } catch (error) {
        throw networkError(error instanceof Error ? error.message : undefined);
      }
      // GraphQL errors come with a JSON body whatever the HTTP status; anything else is a proxy's page.
      const body = (await response.json().catch(() => null)) as ExecutionResultLike<never> | null;
      if (!body) throw networkError(`HTTP ${response.status}`);
      if (body.errors?.length) throw apiErrorFrom(body.errors);
      if (!body.data) throw networkError('empty response');
      return body.data;
    },

    upload(document, file, onProgress, signal) {
      const form = new FormData();
      form.set('operations', JSON.stringify({ query: queryText(document), variables: { file: null } }));
      form.set('map', JSON.stringify({ 0: ['variables.file'] }));
      form.set('0', file, file.name);
      return new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open('POST', GRAPHQL_PATH);
        xhr.setRequestHeader('authorization', authorization);
        xhr.setRequestHeader('accept', 'application/graphql-response+json, application/json');
        xhr.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
        xhr.onerror = () => reject(networkError('upload failed'));
        xhr.onabort = () => reject(networkError('upload canceled'));
        xhr.onload = () => {
          let body: ExecutionResultLike<never> | null = null;
          try {
            body = JSON.parse(xhr.responseText) as ExecutionResultLike<never>;
          } catch {
            return reject(networkError(`HTTP ${xhr.status}`));
          }
          if (body.errors?.length) return reject(apiErrorFrom(body.errors));
          if (!body.data) return reject(networkError('empty response'));
          resolve(body.data);
        };
        signal?.addEventListener('abort', () => xhr.abort());
        xhr.send(form);
      });
    },

    subscribe(document, variables, observer) {
      // graphql-ws completes a sink after its unsubscribe; callers expect silence once they stop.
      let stopped = false;
      const stopGraphqlWs = ws().subscribe<never>(
        { query: queryText(document), variables: variables as Record<string, unknown> },
        {
          next(result: ExecutionResultLike<never>) {
            if (stopped) return;
            if (result.errors?.length) observer.error(apiErrorFrom(result.errors));
            else if (result.data) observer.next(result.data);
          },
          error(error: unknown) {
            if (stopped) return;
            stopped = true;
            if (Array.isArray(error)) observer.error(apiErrorFrom(error as GraphQLErrorLike[]));
            else if (isForbiddenClose(error)) observer.error(new ApiError('UNAUTHENTICATED', 'The live connection was closed: its credential expired or was revoked.'));
            else if (error instanceof CloseEvent) observer.error(networkError(`live connection closed, code ${error.code}`));
            else observer.error(networkError(error instanceof Error ? error.message : undefined));
          },
          complete() {
            if (stopped) return;
            stopped = true;
            observer.complete();
          },
        },
      );
      return () => {
        stopped = true;
        stopGraphqlWs();
      };
    },

    close() {
      void socket?.dispose();
      socket = null;
    },
  };
}
