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
          const { principal, sessions } = args.contextValue;
          if (!principal || !isAsyncIterable(result)) return;
          let untrack = () => {};
          const { stream, end } = endable(withCleanup(result[Symbol.asyncIterator](), () => untrack()));
          untrack = sessions.track(principal, end);
          setResult(stream);
        },
      };
    },
  };
}
