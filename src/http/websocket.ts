import type { Server } from 'node:http';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import type { IncomingMessage } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Authentication } from '../auth/principal.ts';
import { holdUntilFirst, SetupTurns } from './setup-turns.ts';
import type { Authenticator } from '../auth/authenticate.ts';
import type { CredentialSessions } from '../auth/sessions.ts';
import type { Segue } from '../runtime.ts';
import type { Yoga } from './yoga.ts';

/** Close code for a refused or no longer valid credential (graphql-ws' Forbidden). */
const FORBIDDEN = 4403;

type EnvelopedArgs = ExecutionArgs & {
  rootValue: { execute: (args: ExecutionArgs) => unknown; subscribe: (args: ExecutionArgs) => unknown; socket: WebSocket };
};

/** How long a new subscription may keep its setup turn waiting for its snapshot. */
const SNAPSHOT_TURN_MS = 2_000;

/** What a connection keeps: its socket and its credential, checked once (not the upgrade request). */
type Extra = { socket: WebSocket; request?: IncomingMessage; authentication?: Authentication };

const isStream = (value: unknown): value is AsyncIterableIterator<unknown> =>
  typeof value === 'object' && value !== null && Symbol.asyncIterator in value;

/**
 * graphql-ws on the same port and path as Yoga (/graphql). A connection must present a valid
 * credential in connectionParams.authorization or it is refused (close 4403), and it is closed
 * with 4403 as soon as that credential is revoked or expires; each operation then runs through
 * Yoga's envelop (the same schema, context, authentication and error masking as HTTP), with the
 * credential the connection was accepted with. Setting up a connection and each subscription
 * (through its snapshot read) waits for a turn (SUBSCRIPTION_SETUP_CONCURRENCY at once).
 */
export function attachWebSocket(
  server: Server,
  yoga: Yoga,
  deps: { segue: Segue; authenticator: Authenticator; sessions: CredentialSessions },
) {
  const { segue } = deps;
  const wss = new WebSocketServer({ server, path: '/graphql' });
  const { perConnection, setupConcurrency } = segue.config.subscriptions;
  const turns = new SetupTurns(setupConcurrency);
  const disposable = useServer<Record<string, unknown> | undefined, Extra>(
    {
      execute: (args) => (args as EnvelopedArgs).rootValue.execute(args) as never,
      subscribe: async (args) => {
        const { rootValue } = args as EnvelopedArgs;
        const end = await turns.take();
        // Gone while it waited: nothing to set up (graphql-ws drops the operation).
        if (rootValue.socket.readyState !== rootValue.socket.OPEN) {
          end();
          return (async function* () {})() as never;
        }
        try {
          const result = await rootValue.subscribe(args);
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
        // Only the socket and the credential stay with the connection.
        delete (ctx.extra as { request?: IncomingMessage }).request;
        const socket = ctx.extra.socket;
        const authentication = await turns.run(() => deps.authenticator.authenticate(ctx.connectionParams?.authorization as string | undefined));
        if (!authentication.principal || socket.readyState !== socket.OPEN) return false;
        ctx.extra.authentication = authentication;
        const untrack = deps.sessions.track(authentication.principal, () => {
          // Revoked or expired: no further operation runs on this connection, even before the
          // client acknowledges the close.
          ctx.extra.authentication = undefined;
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
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          connectionParams: ctx.connectionParams,
          authentication,
          params: payload,
        });
        let document;
        try {
          document = parse(payload.query);
        } catch (error) {
          return [error as GraphQLError];
        }
        const errors = validate(schema, document);
        if (errors.length > 0) return errors;
        return {
          schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe, socket: ctx.extra.socket },
        } as EnvelopedArgs;
      },
    },
    wss,
  );
  return {
    /** Closes every socket (clients get 1001 Going Away) and stops accepting new ones. */
    async close() {
      await disposable.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
