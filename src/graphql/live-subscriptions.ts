import { subscribe, type ExecutionArgs, type ExecutionResult, type GraphQLError } from 'graphql';
import { authenticationRefusal } from './authentication.ts';
import type { Context } from './context.ts';
import { maskError } from './errors.ts';

/**
 * Subscriptions over WebSocket, run by graphql-js itself rather than through Yoga's envelop. An
 * idle subscriber waits in every layer around its stream, and the envelop's layers (result and
 * error hooks per plugin, the executor's stream flattening, their caches) cost several KB per
 * subscriber and time on every event. What they did for a subscription is done here in one
 * layer: the authentication gate before anything runs, and errors masked (the originals logged)
 * as Yoga masks them. Validation and query limits still run in the envelop (src/http/websocket.ts),
 * and a credential that ends closes the connection with every subscription on it.
 */
export async function subscribeLive(
  args: ExecutionArgs & { contextValue: Context },
  log: ErrorLog,
): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const masked = (result: ExecutionResult) => maskResult(result, log);
  const refused = authenticationRefusal(args);
  if (refused) return refused;
  const result = await subscribe(args);
  return Symbol.asyncIterator in result ? new MaskedStream(result, masked) : masked(result);
}

/** Where masked errors go: yogaLogger's error, which logs a client's mistake at debug only. */
type ErrorLog = { error(error: unknown): void };

/** A result as clients see it: every error masked; an error the mask changed is logged, as Yoga does. */
function maskResult(result: ExecutionResult, log: ErrorLog): ExecutionResult {
  if (!result.errors?.length) return result;
  const errors = result.errors.map((error) => {
    const shown = maskError(error) as GraphQLError;
    if (shown !== error) log.error(error);
    return shown;
  });
  return { ...result, errors };
}

/** A class with prototype methods: one small object per subscription, nothing per read. */
class MaskedStream implements AsyncIterableIterator<ExecutionResult> {
  constructor(
    private readonly stream: AsyncIterator<ExecutionResult>,
    private readonly mask: (result: ExecutionResult) => ExecutionResult,
  ) {}

  next(): Promise<IteratorResult<ExecutionResult>> {
    return this.stream.next().then((read) => (read.done || !read.value.errors ? read : { done: false, value: this.mask(read.value) }));
  }

  return(): Promise<IteratorResult<ExecutionResult>> {
    return Promise.resolve(this.stream.return?.()).then((read) => read ?? { value: undefined, done: true });
  }

  throw(error?: unknown): Promise<IteratorResult<ExecutionResult>> {
    return this.stream.throw ? this.stream.throw(error) : Promise.reject(error);
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}
