import { createSourceEventStream, execute, GraphQLError, type ExecutionArgs, type ExecutionResult } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';
import { authenticationRefusal } from './authentication.ts';
import type { Context } from './context.ts';
import { maskError } from './errors.ts';
import type { SharedExecutions } from './shared-executions.ts';
import { sseResults, type SseOptions } from './sse-results.ts';

/**
 * Subscriptions, run by graphql-js itself. Over WebSocket they bypass Yoga's envelop: an idle
 * subscriber waits in every layer around its stream, and the envelop's layers (result and error
 * hooks per plugin, the executor's stream flattening, their caches) cost several KB per
 * subscriber and time on every event. What they did for a subscription is done here in one
 * layer: the authentication gate before anything runs, and errors masked (the originals logged)
 * as Yoga masks them. graphql-js' own subscribe() would add a layer of its own too (an
 * iterator of closures per subscription), so each event is executed here, as it does.
 * Validation and query limits still run in the envelop (src/http/websocket.ts), and a credential
 * that ends closes the WebSocket with every subscription on it. Over SSE, a subscription is
 * served the same way beside Yoga (src/http/sse-subscriptions.ts), and one it leaves to Yoga is
 * subscribed through here by Yoga's envelop (useLiveSubscriptions, below). Either way, each event
 * is executed once for all the subscribers of this process that would get the same result (`shared`).
 */
export async function subscribeLive(
  args: ExecutionArgs & { contextValue: Context },
  log: ErrorLog,
  shared: SharedExecutions,
): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const refused = authenticationRefusal(args);
  if (refused) return refused;
  const source = await createSourceEventStream(args);
  return Symbol.asyncIterator in source
    ? new LiveResults(source[Symbol.asyncIterator](), args, log, shared)
    : maskResult(source, log);
}

/**
 * The subscriptions Yoga serves itself (server-sent events that src/http/sse-subscriptions.ts
 * leaves to it) run through subscribeLive too, so their events are
 * executed once with the WebSocket subscribers who would get the same result, rather than once
 * per subscriber by the executor's own subscribe. The envelop's layers stay around them (the
 * gates before, masking and the credential's lifetime after): they only read a shared result and
 * replace it with a copy when they change it (masked errors), never change it in place. Their
 * events are then written by sseResults (src/graphql/sse-results.ts), once per shared result.
 */
export function useLiveSubscriptions(log: ErrorLog, shared: SharedExecutions, keepAliveMs: number): Plugin<Context> {
  // Requests that subscribed: their streams are the ones written as server-sent events here.
  const subscriptions = new WeakSet<Request>();
  return {
    onSubscribe({ args, setSubscribeFn }) {
      if (args.contextValue.request) subscriptions.add(args.contextValue.request);
      setSubscribeFn(async (args) => {
        // A refusal the SSE request already got on its way to be served directly
        // (src/http/sse-subscriptions.ts): answered as it is, its resolvers not run again.
        const given = (args.contextValue as { subscribed?: ExecutionResult }).subscribed;
        const result = given ?? (await subscribeLive(args as ExecutionArgs & { contextValue: Context }, log, shared));
        return Symbol.asyncIterator in result ? result : asHttpRefusal(result);
      });
    },
    onResultProcess({ request, result, resultProcessor, setResultProcessor, serverContext }) {
      // A stream no one will read: its client left while it was set up (the response is then
      // dropped by the server adapter), or it asked for a media type a stream cannot be sent as
      // (Yoga then answers 406, having subscribed already). Left alone, it would keep the
      // account's place (SUBSCRIPTIONS_PER_ACCOUNT), its Redis topic and its credential's watch
      // for as long as the process lives. Ended here, its outermost layer (every hook's wrapper)
      // first, so each lets go of what it holds. (Yoga's own processors are chosen before this.)
      const gone = request.signal.aborted || (serverContext as { res?: { destroyed: boolean } }).res?.destroyed;
      if (isAsyncIterable(result) && (gone || !resultProcessor)) {
        void Promise.resolve(result[Symbol.asyncIterator]().return?.()).catch(() => undefined);
      } else if (isAsyncIterable(result) && subscriptions.has(request)) {
        // A subscription's stream: Yoga serves those only as server-sent events (its processor was
        // chosen above), and they are written by sseResults. The request's setup turn (serveInTurn)
        // ends with its first event.
        const { res, setUp } = serverContext as { res?: SseOptions['connection']; setUp?: SseOptions['setUp'] };
        setResultProcessor(sseResults({ keepAliveMs, connection: res, setUp, log }), 'text/event-stream');
      }
    },
  };
}

/**
 * A subscription refused before anything ran, for its variables (errors without a path): over
 * HTTP that is the request's own fault, 400 (Yoga's `http` extension sets the status and is never
 * sent), as for a query or mutation, and as the executor Yoga would otherwise subscribe with
 * answers. Refusals of fields (credential, scope, a missing batch) have a path and keep their 200.
 */
function asHttpRefusal(result: ExecutionResult): ExecutionResult {
  if (result.data !== undefined || !result.errors?.length || result.errors.some((e) => e.path)) return result;
  return {
    ...result,
    errors: result.errors.map(
      (e) => new GraphQLError(e.message, { nodes: e.nodes, extensions: { ...e.extensions, http: { ...(e.extensions.http as object), status: 400 } } }),
    ),
  };
}

/** Source errors logged already: a shared read that fails ends every viewer of it with one error, logged once. */
const loggedSourceErrors = new WeakSet<object>();

/** Whether this error was logged before (and, from now on, that it has been). */
function loggedOnce(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  if (loggedSourceErrors.has(error)) return true;
  loggedSourceErrors.add(error);
  return false;
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

/**
 * Each event of a subscription's source stream executed against the operation (its rootValue),
 * errors masked: graphql-js' subscribe() in one object with prototype methods, nothing per read.
 */
class LiveResults implements AsyncIterableIterator<ExecutionResult> {
  constructor(
    private readonly source: AsyncIterator<unknown>,
    private readonly args: ExecutionArgs & { contextValue: Context },
    private readonly log: ErrorLog,
    private readonly shared: SharedExecutions,
  ) {}

  /**
   * What this subscription's results are shared by (null: never shared); made at its first
   * event (an account-wide stream that never sends holds none), one string for all who share it.
   */
  private key: string | null | undefined = undefined;

  next(): Promise<IteratorResult<ExecutionResult>> {
    return this.source.next().then(
      (read) => (read.done ? { done: true, value: undefined } : this.result(read.value)),
      (error: unknown) => {
        throw this.masked(error);
      },
    );
  }

  /**
   * The source ended with an error (a subscriber that fell behind, a read that failed), as the
   * client is to see it: masked as a result's errors are (LIMIT_EXCEEDED keeps its code, a
   * database's own message never leaves), the original logged.
   */
  private masked(error: unknown): Error {
    const shown = maskError(error);
    if (shown !== error && !loggedOnce(error)) this.log.error(error);
    return shown;
  }

  private async result(event: unknown): Promise<IteratorResult<ExecutionResult>> {
    try {
      // Masked once for all who share it (so its errors are logged once), and never changed after.
      if (this.key === undefined) this.key = this.shared.keyOf(this.args);
      const value = await this.shared.run(event, this.key, () => this.execute(event));
      return { done: false, value };
    } catch (error) {
      // As graphql-js' subscribe: an event that cannot be executed ends the source too.
      await this.returnIgnoringErrors();
      throw error;
    }
  }

  private async execute(event: unknown): Promise<ExecutionResult> {
    const result = await execute({ ...this.args, rootValue: event });
    return result.errors ? maskResult(result, this.log) : result;
  }

  /** Ends the source, keeping the caller's error if ending it fails too. */
  private async returnIgnoringErrors() {
    try {
      await this.source.return?.();
    } catch {
      // The original error is the one to report.
    }
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    await this.source.return?.();
    return { value: undefined, done: true };
  }

  async throw(error?: unknown): Promise<IteratorResult<ExecutionResult>> {
    if (this.source.throw) {
      const read = await this.source.throw(error);
      return read.done ? { done: true, value: undefined } : this.result(read.value);
    }
    await this.returnIgnoringErrors();
    throw error;
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}
