import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print, type GraphQLFormattedError } from 'graphql';
import { createClient as createSseClient } from 'graphql-sse';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import WebSocket from 'ws';

export interface Subscription<T> {
  events: T[];
  errors: GraphQLFormattedError[];
  /** Resolves when the server completes the stream; rejects on a transport error. */
  done: Promise<void>;
  /** Resolves with the first event. */
  first: Promise<T>;
  stop(): void;
}

type Sink = {
  next(value: { data?: unknown; errors?: readonly GraphQLFormattedError[] }): void;
  error(error: unknown): void;
  complete(): void;
};

function collector<T>(pick: (data: unknown) => T) {
  const events: T[] = [];
  const errors: GraphQLFormattedError[] = [];
  let resolveDone!: () => void;
  let rejectDone!: (e: unknown) => void;
  let resolveFirst!: (v: T) => void;
  const done = new Promise<void>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  const first = new Promise<T>((res) => (resolveFirst = res));
  done.catch(() => undefined);
  const sink: Sink = {
    next(value) {
      if (value.errors) errors.push(...value.errors);
      if (value.data) {
        const event = pick(value.data);
        if (events.length === 0) resolveFirst(event);
        events.push(event);
      }
    },
    error(error) {
      if (Array.isArray(error)) {
        errors.push(...(error as GraphQLFormattedError[]));
        resolveDone();
      } else rejectDone(error);
    },
    complete() {
      resolveDone();
    },
  };
  return { events, errors, done, first, sink };
}

/** A graphql-ws client over WebSocket, authenticated with connectionParams. */
export function wsClient(httpUrl: string, apiKey: string | null, extra: { onClose?: (code: number) => void } = {}): WsClient {
  return createWsClient({
    url: httpUrl.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
    retryAttempts: 0,
    lazy: true,
    on: { closed: (event) => extra.onClose?.((event as { code: number }).code) },
  });
}

/** A graphql-sse client (Yoga's SSE, distinct connections), authenticated with the header. */
export function sseClient(httpUrl: string, apiKey: string | null) {
  return createSseClient({
    url: httpUrl,
    headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {},
    retryAttempts: 0,
  });
}

export function subscribe<TData, TVariables, T>(
  client: { subscribe(payload: { query: string; variables?: Record<string, unknown> }, sink: Sink): () => void },
  document: TypedDocumentNode<TData, TVariables>,
  variables: TVariables,
  pick: (data: TData) => T,
): Subscription<T> {
  const c = collector<T>((data) => pick(data as TData));
  const stop = client.subscribe({ query: print(document), variables: variables as Record<string, unknown> }, c.sink);
  return { events: c.events, errors: c.errors, done: c.done, first: c.first, stop };
}
