import type { Server } from 'node:http';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Authentication } from '../auth/principal.ts';
import type { Authenticator } from '../auth/authenticate.ts';
import { serveGraphqlWs, TRY_AGAIN_LATER } from './graphql-ws-server.ts';
import { holdUntilFirst, NO_ROOM_MESSAGE, RETRY_WHEN_FULL_S, SNAPSHOT_TURN_MS, type SetupTurns } from './setup-turns.ts';
import { contextOf, type Context, type ContextDeps } from '../graphql/context.ts';
import { maskError, yogaLogger } from '../graphql/errors.ts';
import { subscribeLive } from '../graphql/live-subscriptions.ts';
import type { SharedExecutions } from '../graphql/shared-executions.ts';
import { operationOf } from '../graphql/operation-gate.ts';
import { envelopedOperation } from './enveloped-operation.ts';
import type { Yoga } from './yoga.ts';

/** Close code for a refused or no longer valid credential (graphql-ws' Forbidden). */
const FORBIDDEN = 4403;

/** Queries and mutations run through Yoga's envelop; subscriptions through subscribeLive. */
type OperationArgs = ExecutionArgs & {
  contextValue: Context;
  rootValue: { execute?: (args: ExecutionArgs) => unknown; connection: Extra };
};

/**
 * What a connection keeps: its socket and its authentication, checked once (not the upgrade
 * request, nor the key); graphql-ws' record of its operations (each query, mutation and
 * subscription from its subscribe message to its last message sent), and how many of its
 * subscriptions wait for a setup turn.
 */
type Extra = { socket: WebSocket; authentication?: Authentication; operations?: Readonly<Record<string, unknown>>; inLine: number };

const isStream = (value: unknown): value is AsyncIterableIterator<unknown> =>
  typeof value === 'object' && value !== null && Symbol.asyncIterator in value;

/**
 * graphql-ws on the same port and path as Yoga (/graphql). A connection must present a valid
 * credential in connectionParams.authorization or it is refused (close 4403), and it is closed
 * with 4403, its subscriptions ended, as soon as that credential is revoked or expires. Each
 * operation is parsed and validated by Yoga's envelop (the same schema, limits and caches as
 * HTTP) with the credential the connection was accepted with; queries and mutations then run
 * through it, subscriptions through subscribeLive (the same gate and error masking, far less
 * memory per subscriber). Setting up a connection and each subscription (through its snapshot
 * read) waits for a turn (SUBSCRIPTION_SETUP_CONCURRENCY at once).
 *
 * While the heap is near its limit (`full`), a new connection is closed with 1013 (Try Again
 * Later) as it opens, or when its turn comes to set up the connection or a subscription, if the
 * heap filled up while it waited in line. graphql-ws clients reconnect after a 1013, with
 * their backoff, and subscribe again (a refused handshake, 503, would end their subscriptions with
 * an error instead). A connection with anything else under way (a stream running, a query or
 * mutation not yet answered) keeps it: the subscription is refused alone, with an UNAVAILABLE
 * error.
 */
export function attachWebSocket(server: Server, yoga: Yoga, deps: ContextDeps, shared: SharedExecutions, turns: SetupTurns, full: () => boolean) {
  const { segue } = deps;
  const errorLog = yogaLogger(segue.logger.child({ component: 'graphql' }));
  // A message is capped as an HTTP request body is (MAX_BODY_BYTES): ws' own cap is 100 MiB, which
  // it would buffer whole for any client that sends one. Past it, the connection is closed with
  // 1009 (Message Too Big).
  const wss = new WebSocketServer({ server, path: '/graphql', maxPayload: segue.config.http.maxBodyBytes });
  const { perConnection, keepAliveMs } = segue.config.subscriptions;
  const disposable = serveGraphqlWs<Record<string, unknown> | undefined, Extra>(
    {
      execute: (args) => (args as OperationArgs).rootValue.execute!(args) as never,
      subscribe: async (args) => {
        const { connection } = (args as OperationArgs).rootValue;
        connection.inLine++;
        const end = await turns.take();
        // Nothing else is under way on the connection: every operation it has is a subscription in line.
        const onlyInLine = Object.keys(connection.operations ?? {}).length === connection.inLine;
        connection.inLine--;
        const { socket } = connection;
        // Gone while it waited: nothing to set up (graphql-ws drops the operation).
        if (socket.readyState !== socket.OPEN) {
          end();
          return nothing() as never;
        }
        // The heap filled up while it waited. A connection with nothing else under way is to come
        // back later (1013: its client reconnects and subscribes again). One with streams running,
        // or a query or mutation whose answer is not sent yet, keeps them: this subscription alone
        // is refused.
        if (full()) {
          end();
          // Thrown from the stream, so graphql-ws ends the operation with an error message (its
          // extensions kept), as it does a refusal in onSubscribe.
          if (!onlyInLine) return refused(noRoomError()) as never;
          socket.close(TRY_AGAIN_LATER, 'Try Again Later');
          return nothing() as never;
        }
        try {
          const result = await subscribeLive(args as OperationArgs, errorLog, shared);
          // The turn is held through the snapshot read (the first value), bounded: a stream
          // without a snapshot (account-wide) sends nothing until a change.
          if (isStream(result)) return holdUntilFirst(result, end, SNAPSHOT_TURN_MS) as never;
          end();
          return result as never;
        } catch (error) {
          end();
          throw error;
        }
      },
      onConnect: async (ctx) => {
        const socket = ctx.extra.socket;
        const authentication = await authenticateInTurn(turns, deps.authenticator, takeCredential(ctx), socket, full);
        // (Closing already, the socket does not send graphql-ws' 4403 for a false answer.)
        if (authentication === 'full') socket.close(TRY_AGAIN_LATER, 'Try Again Later');
        if (!authentication || authentication === 'full' || !authentication.principal || socket.readyState !== socket.OPEN) return false;
        ctx.extra.authentication = authentication;
        ctx.extra.operations = ctx.subscriptions;
        const untrack = deps.sessions.track(authentication.principal, () => {
          // Revoked or expired: no further operation runs on this connection and its streams end
          // now, even before the client acknowledges the close.
          ctx.extra.authentication = undefined;
          for (const stream of Object.values(ctx.subscriptions)) {
            void (stream as AsyncIterator<unknown> | null)?.return?.(undefined)?.catch(() => undefined);
          }
          socket.close(FORBIDDEN, 'Forbidden');
        });
        socket.once('close', untrack);
        return true;
      },
      onSubscribe: async (ctx, _id, payload) => {
        const authentication = ctx.extra.authentication;
        if (!authentication || ctx.extra.socket.readyState !== ctx.extra.socket.OPEN) {
          return [new GraphQLError('This connection\'s credential is no longer valid.', { extensions: { code: 'FORBIDDEN' } })];
        }
        // graphql-ws has already reserved a place for this operation.
        if (Object.keys(ctx.subscriptions).length > perConnection) {
          return [
            new GraphQLError(`At most ${perConnection} subscriptions per connection.`, {
              extensions: { code: 'LIMIT_EXCEEDED', limit: perConnection },
            }),
          ];
        }
        let operation: ReturnType<typeof envelopedOperation>;
        try {
          operation = envelopedOperation(yoga, authentication, payload);
        } catch (error) {
          // Not the client's mistake (those are refusals): logged, and this operation alone refused.
          errorLog.error(error);
          return [maskError(error) as GraphQLError];
        }
        if ('errors' in operation) return operation.errors;
        const { enveloped: { schema, execute, contextFactory }, document } = operation;
        const live = operationOf(document, payload.operationName)?.operation === 'subscription';
        return {
          schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          // A subscription keeps its context as long as it lives: only Segue's own.
          contextValue: live ? contextOf(deps, authentication) : await contextFactory(),
          rootValue: live ? { connection: ctx.extra } : { execute, connection: ctx.extra },
        } as OperationArgs;
      },
    },
    wss,
    (socket) => ({ socket, inLine: 0 }),
    segue.logger.child({ component: 'websocket' }),
    { keepAliveMs, refuse: full },
  );
  return {
    /** Closes every socket (clients get 1001 Going Away) and stops accepting new ones. */
    close: () => disposable.dispose(),
  };
}

/**
 * The credential out of a connection's connectionParams (graphql-ws keeps them for the
 * connection's life): the connection keeps who it is, not the secret, for the hours it may stay
 * open. Every operation's context is built from the authentication, never from connectionParams
 * again; their other fields stay as sent.
 */
function takeCredential(ctx: { connectionParams?: Readonly<Record<string, unknown>> | undefined }): string | undefined {
  const params = ctx.connectionParams;
  if (!params || !('authorization' in params)) return undefined;
  const { authorization, ...rest } = params;
  // Replaced rather than edited (readonly to its handlers): graphql-ws sets it once, just before
  // onConnect, and reads it nowhere after.
  const writable = ctx as { connectionParams?: Record<string, unknown> | undefined };
  writable.connectionParams = Object.keys(rest).length > 0 ? rest : undefined;
  return typeof authorization === 'string' ? authorization : undefined;
}

/**
 * Authenticates in a setup turn: null if the client left while it waited, 'full' if the heap is
 * near its limit when the turn comes. A function of its own, so the credential lives only in this
 * call's closure: one made inside onConnect would share its scope with the revocation callback,
 * which lives as long as the connection.
 */
function authenticateInTurn(turns: SetupTurns, authenticator: Authenticator, credential: string | undefined, socket: WebSocket, full: () => boolean) {
  return turns.run(async () => {
    if (socket.readyState !== socket.OPEN) return null;
    if (full()) return 'full' as const;
    return authenticator.authenticate(credential);
  });
}

/** A stream that ends at once: for an operation with nothing to set up. */
async function* nothing(): AsyncGenerator<never> {}

/** A stream that fails at once with `error`. */
async function* refused(error: GraphQLError): AsyncGenerator<never> {
  throw error;
}

const noRoomError = () =>
  new GraphQLError(NO_ROOM_MESSAGE, {
    extensions: { code: 'UNAVAILABLE', retryAfter: RETRY_WHEN_FULL_S },
  });
