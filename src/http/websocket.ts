import type { Server } from 'node:http';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { Authenticator } from '../auth/authenticate.ts';
import type { CredentialSessions } from '../auth/sessions.ts';
import type { Segue } from '../runtime.ts';
import type { Yoga } from './yoga.ts';

/** Close code for a refused or no longer valid credential (graphql-ws' Forbidden). */
const FORBIDDEN = 4403;

type EnvelopedArgs = ExecutionArgs & {
  rootValue: { execute: (args: ExecutionArgs) => unknown; subscribe: (args: ExecutionArgs) => unknown };
};

/**
 * graphql-ws on the same port and path as Yoga (/graphql). A connection must present a valid
 * credential in connectionParams.authorization or it is refused (close 4403), and it is closed
 * with 4403 as soon as that credential is revoked or expires; each operation then runs through
 * Yoga's envelop (the same schema, context, authentication and error masking as HTTP).
 */
export function attachWebSocket(
  server: Server,
  yoga: Yoga,
  deps: { segue: Segue; authenticator: Authenticator; sessions: CredentialSessions },
) {
  const { segue } = deps;
  const wss = new WebSocketServer({ server, path: '/graphql' });
  const perConnection = segue.config.subscriptions.perConnection;
  const disposable = useServer(
    {
      execute: (args) => (args as EnvelopedArgs).rootValue.execute(args) as never,
      subscribe: (args) => (args as EnvelopedArgs).rootValue.subscribe(args) as never,
      onConnect: async (ctx) => {
        const { principal } = await deps.authenticator.authenticate(ctx.connectionParams?.authorization as string | undefined);
        if (!principal) return false;
        const socket = ctx.extra.socket;
        const untrack = deps.sessions.track(principal, () => socket.close(FORBIDDEN, 'Forbidden'));
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
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
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
