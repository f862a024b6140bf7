import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import { endable } from '../auth/sessions.ts';
import { withCleanup } from '../events/live.ts';
import type { Context } from './context.ts';

/**
 * A subscription lives no longer than the credential it was opened with: revoking the key (or
 * the key that minted a browser token), or the credential expiring, ends the stream. Over SSE the
 * response then completes; over WebSocket the socket itself is closed with 4403 as well
 * (src/http/websocket.ts). Every subscription field goes through here, so none can forget it.
 */
export function useCredentialLifetime(): Plugin<Context> {
  return {
    onSubscribe() {
      return {
        onSubscribeResult({ args, result, setResult }) {
          if (!args.contextValue.principal || !isAsyncIterable(result)) return;
          setResult(untilCredentialEnds(result, args.contextValue));
        },
      };
    },
  };
}

/**
 * `stream`, ended when the credential of `context` is revoked or expires (and no longer watched
 * once it ends): for a stream whose context has a principal.
 */
export function untilCredentialEnds<T>(stream: AsyncIterable<T>, { principal, sessions }: Pick<Context, 'principal' | 'sessions'>): AsyncIterableIterator<T> {
  let untrack = () => {};
  const { stream: ending, end } = endable(withCleanup(stream[Symbol.asyncIterator](), () => untrack()));
  untrack = sessions.track(principal!, end);
  return ending;
}
