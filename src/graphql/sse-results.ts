import { PassThrough, type Writable } from 'node:stream';
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
 * them one object), where Yoga's stringified and encoded it for each, and those ready bytes are
 * written to a Node stream, with no web-stream controller, text encoder or promise per event in
 * between. For Yoga (a stream it serves itself) the body is a PassThrough; a subscription served
 * beside Yoga (src/http/sse-subscriptions.ts) is written straight to its response (writeSse).
 */
export const sseResults =
  (options: SseOptions): ResultProcessor =>
  (result, fetchAPI) => {
    const body = new PassThrough();
    writeSse((result as AsyncIterable<ExecutionResult>)[Symbol.asyncIterator](), body, options);
    return new fetchAPI.Response(body as unknown as BodyInit, { status: 200, headers: { ...SSE_HEADERS } });
  };

/** The headers of a subscription's event stream, as Yoga's own processor sends them. */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'text/event-stream',
  Connection: 'keep-alive',
  'Cache-Control': 'no-cache',
  'Content-Encoding': 'none',
};

/**
 * Writes a subscription's results to `target` as server-sent events, until they end, the target
 * closes (the client left: the subscription is ended under it), or they fail. An idle subscriber
 * holds one pending read, its keep-alive timer, and one listener on the target.
 */
export function writeSse(results: AsyncIterator<ExecutionResult>, target: SseTarget, options: SseOptions): void {
  new SseWriter(results, target, options).start();
}

/** Where events are written: a response, or a stream that is one's body. */
export type SseTarget = Pick<Writable, 'write' | 'end' | 'once' | 'off' | 'writableLength' | 'destroyed'>;

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

class SseWriter {
  private readonly ping: NodeJS.Timeout;
  private setUp: (() => void) | undefined;
  private closed = false;
  // Only what the stream needs for its life: once called, `setUp` (and the request it holds) goes.
  private readonly log: SseOptions['log'];
  private readonly connection: SseOptions['connection'];

  constructor(
    private readonly results: AsyncIterator<ExecutionResult>,
    private readonly target: SseTarget,
    options: SseOptions,
  ) {
    this.setUp = options.setUp;
    this.log = options.log;
    this.connection = options.connection;
    // Not while the socket is full (what is queued keeps the connection busy anyway).
    this.ping = setInterval(() => this.target.writableLength === 0 && this.target.write(PING), options.keepAliveMs);
    this.ping.unref();
  }

  start() {
    this.target.once('close', this.onClose);
    // First a comment: some browsers show nothing of a response until its body starts.
    this.target.write(PING);
    this.readNext();
  }

  /** The next result, read once the target has room for it: backpressure holds the next event at the source. */
  private readonly readNext = () => {
    this.results.next().then(
      (read) => {
        if (this.closed) return;
        this.setUpDone();
        if (read.done) return this.finish(COMPLETE);
        // Nothing to send (Yoga skips these too): the next one is read.
        if (read.value == null) return this.readNext();
        let room: boolean;
        try {
          room = this.target.write(frameOf(read.value));
        } catch (error) {
          return this.fail(error);
        }
        if (room) this.readNext();
        else this.target.once('drain', this.readNext);
      },
      (error: unknown) => {
        if (this.closed) return;
        this.setUpDone();
        const reason = asGraphQLError(error);
        if (reason) this.endWith(reason);
        else this.fail(error);
      },
    );
  };

  /**
   * Something other than the subscription's own GraphQL error broke the stream (a result that
   * could not be written as an event): logged, and the connection closed, so the client sees the
   * stream end without `complete` rather than hang on a response that says nothing.
   */
  private fail(error: unknown) {
    this.log.error(error);
    this.connection?.destroy();
    // A body of its own (Yoga's) ends after what it holds: the cut connection is the client's signal.
    if (!this.target.destroyed) this.target.end();
    this.onClose();
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
    let frame: Buffer;
    try {
      frame = frameOf({ errors: [error] });
    } catch (failure) {
      return this.fail(failure);
    }
    this.finish(Buffer.concat([frame, COMPLETE]));
  }

  /** The last bytes, and the end of the body. */
  private finish(last: Buffer) {
    clearInterval(this.ping);
    this.target.end(last);
  }

  private setUpDone() {
    const setUp = this.setUp;
    this.setUp = undefined;
    setUp?.();
  }

  /** The target closed (the client left, the body ended or failed): the subscription ends, letting go of what it holds. */
  private readonly onClose = () => {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.ping);
    this.target.off('close', this.onClose);
    this.target.off('drain', this.readNext);
    this.setUpDone();
    void Promise.resolve(this.results.return?.()).catch(() => undefined);
  };
}
