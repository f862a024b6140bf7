import { Readable } from 'node:stream';
import type { ExecutionResult, GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { asGraphQLError } from './errors.ts';

type ResultProcessor = Parameters<Parameters<NonNullable<Plugin['onResultProcess']>>[0]['setResultProcessor']>[0];

export interface SseOptions {
  /** A comment this often (SUBSCRIPTION_KEEPALIVE_MS): proxies close a response that stays silent. */
  keepAliveMs: number;
  /** The response (its connection): a stream that fails midway closes it. */
  connection?: { destroy(): unknown } | undefined;
  /** Called once the first event has gone out (a subscription's snapshot), or the stream ended first. */
  setUp?: (() => void) | undefined;
  /** Where a stream's failure is logged. */
  log: { error(error: unknown): void };
}

/**
 * A subscription's results as server-sent events, in the format of Yoga's own processor
 * (graphql-sse's distinct connections mode: `event: next` with the result, `event: complete` at
 * the end, a comment first and then every `keepAliveMs`), written with less per subscriber: each
 * result is serialized once for all the subscribers it is shared with (SharedExecutions hands
 * them one object), where Yoga's stringified and encoded it for each, and the body is a Node
 * stream of those ready bytes, piped to the socket, with no web-stream controller, text encoder
 * or promise per event in between. An idle subscriber holds one pending read.
 */
export const sseResults =
  (options: SseOptions): ResultProcessor =>
  (result, fetchAPI) =>
    new fetchAPI.Response(new SseBody((result as AsyncIterable<ExecutionResult>)[Symbol.asyncIterator](), options) as unknown as BodyInit, {
      status: 200,
      headers: {
        'Content-Type': 'text/event-stream',
        Connection: 'keep-alive',
        'Cache-Control': 'no-cache',
        'Content-Encoding': 'none',
      },
    });

const PING = Buffer.from(':\n\n');
const COMPLETE = Buffer.from('event: complete\ndata:\n\n');

/** Each result's event, made once: the subscribers who share a result share its bytes. */
const frames = new WeakMap<object, Buffer>();

function frameOf(result: ExecutionResult): Buffer {
  let frame = frames.get(result);
  if (!frame) frames.set(result, (frame = Buffer.from(`event: next\ndata: ${JSON.stringify(asSent(result))}\n\n`)));
  return frame;
}

/**
 * What a client is sent of a result, as Yoga sends it: no `http` extension (the status it set is
 * the response's), and no error extensions meant for the server (`http`, `unexpected`).
 */
function asSent(result: ExecutionResult): ExecutionResult | Record<string, unknown> {
  if (!result.errors?.length && !result.extensions?.http) return result;
  const { http: _, ...extensions } = (result.extensions ?? {}) as Record<string, unknown>;
  return {
    ...result,
    ...(result.errors && { errors: result.errors.map(asSentError) }),
    extensions: Object.keys(extensions).length > 0 ? extensions : undefined,
  };
}

function asSentError(error: GraphQLError) {
  const json = typeof error.toJSON === 'function' ? error.toJSON() : { message: (error as Error).message };
  if (!json.extensions) return json;
  const { http: _h, unexpected: _u, ...extensions } = json.extensions as Record<string, unknown>;
  return { ...json, extensions: Object.keys(extensions).length > 0 ? extensions : undefined };
}

class SseBody extends Readable {
  private reading = false;
  private readonly ping: NodeJS.Timeout;
  private setUp: (() => void) | undefined;
  // Only what the stream needs for its life: once called, `setUp` (and the request it holds) goes.
  private readonly log: SseOptions['log'];
  private readonly connection: SseOptions['connection'];

  constructor(
    private readonly results: AsyncIterator<ExecutionResult>,
    options: SseOptions,
  ) {
    super();
    this.setUp = options.setUp;
    this.log = options.log;
    this.connection = options.connection;
    // First a comment: some browsers show nothing of a response until its body starts.
    this.push(PING);
    // Not while the socket is full (what is queued keeps the connection busy anyway).
    this.ping = setInterval(() => this.readableLength === 0 && this.push(PING), options.keepAliveMs);
    this.ping.unref();
  }

  override _read() {
    if (this.reading) return;
    this.reading = true;
    this.results.next().then(
      (read) => {
        this.reading = false;
        if (this.destroyed) return;
        this.setUpDone();
        if (read.done) {
          clearInterval(this.ping);
          this.push(COMPLETE);
          this.push(null);
          return;
        }
        // Nothing to send (Yoga skips these too): the next one is read.
        if (read.value == null) return this._read();
        try {
          // The stream asks for the next read as soon as it wants more (at once, unless the socket
          // is full: backpressure then holds the next event at the source).
          this.push(frameOf(read.value));
        } catch (error) {
          this.fail(error);
        }
      },
      (error: unknown) => {
        this.reading = false;
        if (this.destroyed) return;
        this.setUpDone();
        const reason = asGraphQLError(error);
        if (reason) this.endWith(reason);
        else this.fail(error);
      },
    );
  }

  /**
   * Something other than the subscription's own GraphQL error broke the stream (a result that
   * could not be written as an event): logged, and the connection closed, so the client sees the
   * stream end without `complete` rather than hang on a response that says nothing. Destroyed
   * without an error: no `error` event is emitted, which nothing here would listen to.
   */
  private fail(error: unknown) {
    this.log.error(error);
    this.connection?.destroy();
    this.destroy();
  }

  /**
   * The subscription ended with an error for its client, masked already (the original logged):
   * LIMIT_EXCEEDED for a subscriber that fell behind, INTERNAL or UNAVAILABLE for a read that
   * failed. Sent as its last `next` ({"errors": [...]}), then `complete`: as a WebSocket client
   * gets it in an `error` message that ends the operation, and the client subscribes again (a
   * snapshot comes first). Ending without `complete` would leave graphql-sse waiting forever
   * whenever the end arrives with the last event (it retries only if it was waiting at the end).
   */
  private endWith(error: GraphQLError) {
    clearInterval(this.ping);
    let frame: Buffer;
    try {
      frame = frameOf({ errors: [error] });
    } catch (failure) {
      return this.fail(failure);
    }
    this.push(frame);
    this.push(COMPLETE);
    this.push(null);
  }

  private setUpDone() {
    const setUp = this.setUp;
    this.setUp = undefined;
    setUp?.();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void) {
    clearInterval(this.ping);
    this.setUpDone();
    // The client left (or the stream failed): the subscription ends, letting go of what it holds.
    Promise.resolve(this.results.return?.())
      .catch(() => undefined)
      .then(() => callback(error));
  }
}
