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
  rootValue: { execute: (args: ExecutionArgs) => unknown; subscribe: (args: ExecutionArgs) => unknown };
};

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
      // A turn waited for does not count against graphql-ws' wait for connection_init.
      connectionInitWaitTimeout: 30_000,
      execute: (args) => (args as EnvelopedArgs).rootValue.execute(args) as never,
      subscribe: async (args) => {
        const end = await turns.take();
        try {
          const result = await (args as EnvelopedArgs).rootValue.subscribe(args);
          if (isStream(result)) return holdUntilFirst(result, end) as never;
          end();
          return result as never;
        } catch (error) {
          end();
          throw error;
        }
      },
      onConnect: async (ctx) => {
        const authentication = await turns.run(() => deps.authenticator.authenticate(ctx.connectionParams?.authorization as string | undefined));
        // Only the socket and the credential stay with the connection.
        delete (ctx.extra as { request?: IncomingMessage }).request;
        if (!authentication.principal) return false;
        ctx.extra.authentication = authentication;
        const socket = ctx.extra.socket;
        const untrack = deps.sessions.track(authentication.principal, () => socket.close(FORBIDDEN, 'Forbidden'));
        socket.once('close', untrack);
        return true;
      },
      onSubscribe: async (ctx, _id, payload) => {
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
          authentication: ctx.extra.authentication!,
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
          rootValue: { execute, subscribe },
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
