import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { heapNearLimit } from './heap-room.ts';

/**
 * Turns for setting up live connections: at most `limit` at once, the rest wait in arrival order,
 * without a deadline. After an API restart every browser reconnects at the same moment; served
 * all at once they would each hold a credential check, a snapshot read and its rows in memory
 * together (and time out on the database pool); served in turns, each is quick and none is
 * refused for being part of the burst.
 */
export class SetupTurns {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  /** `waitingGauge`: told how many wait, whenever that changes (segue_subscription_setups_waiting). */
  constructor(
    private readonly limit: number,
    private readonly waitingGauge?: { set(value: number): void },
  ) {}

  /** Waits for a turn; the returned function ends it (once, however often it is called). */
  async take(): Promise<() => void> {
    if (this.active < this.limit) this.active++;
    else
      await new Promise<void>((resolve) => {
        this.waiting.push(resolve);
        this.waitingGauge?.set(this.waiting.length);
      });
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      const next = this.waiting.shift();
      // The turn passes straight to the next in line (active stays the same).
      if (next) {
        this.waitingGauge?.set(this.waiting.length);
        next();
      } else this.active--;
    };
  }

  /** Runs `work` in a turn. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    const end = await this.take();
    try {
      return await work();
    } finally {
      end();
    }
  }

  /** How many wait for a turn now. */
  get queued() {
    return this.waiting.length;
  }
}

/** How long a new subscription may keep its setup turn waiting for its snapshot. */
export const SNAPSHOT_TURN_MS = 2_000;

/**
 * A request for server-sent events (GraphQL over SSE: a subscription, as graphql-sse, EventSource
 * and GraphiQL ask for one) waits for a setup turn before Yoga reads it, in one line with the
 * WebSockets' connections and subscriptions: after an API restart, thousands of browsers
 * reconnect at once, and served together each would hold its request, context and snapshot read
 * in the heap at the same time (10,000 at once exhausted a 256 MB heap before one stream was set
 * up). Its body is read first, outside the line (its length is capped already): a client that is
 * slow to send it keeps no one else waiting. The turn ends when `serve` calls the `setUp` it is
 * given (the stream's first event, its snapshot, was read), when the response ends or closes, or
 * after SNAPSHOT_TURN_MS, whichever comes first. A client that left meanwhile is not served. While
 * the heap is near its limit (`full`), one is answered 503 with a Retry-After, on arrival, once its
 * body is in, or when its turn comes.
 */
export async function serveInTurn(
  turns: SetupTurns,
  req: IncomingMessage,
  res: ServerResponse,
  serve: (setUp: () => void) => unknown,
  { full = heapNearLimit, refusalHeaders = () => ({}) }: { full?: () => boolean; refusalHeaders?: (req: IncomingMessage) => Record<string, string> } = {},
): Promise<void> {
  // Full already: refused before it takes a place in line.
  if (full()) return refuseWhenFull(res, refusalHeaders(req));
  // Kept as its bytes while it waits: parsed, a body can take many times its size.
  let raw: Buffer | undefined;
  if (req.method === 'POST') {
    try {
      raw = await readWhole(req);
    } catch {
      return; // the client left while sending it
    }
  }
  // Read, it may have filled what was left.
  if (full()) return refuseWhenFull(res, refusalHeaders(req));
  const end = await turns.take();
  // Nobody to answer (counted as aborted, src/http/server.ts).
  if (req.socket.destroyed || res.writableEnded) return end();
  if (full()) {
    end();
    return refuseWhenFull(res, refusalHeaders(req));
  }
  if (raw) (req as IncomingMessage & { body?: unknown }).body = bodyForYoga(req, raw);
  const endTurn = endWithin(end, SNAPSHOT_TURN_MS);
  const setUp = () => {
    res.off('close', setUp);
    res.off('finish', setUp);
    endTurn();
  };
  res.once('close', setUp);
  res.once('finish', setUp);
  await serve(setUp);
}

/**
 * One more stream would take the heap over its limit, and the process down with every stream it
 * holds (browsers that then reconnect all at once would do it again): this one is refused, to
 * come back later, or to another instance.
 */
export const RETRY_WHEN_FULL_S = 10;
/** What such a refusal says, over SSE and WebSocket alike (code UNAVAILABLE). */
export const NO_ROOM_MESSAGE = 'This API instance has no room for another live stream now; try again shortly.';

function refuseWhenFull(res: ServerResponse, headers: Record<string, string>) {
  res.writeHead(503, { ...headers, 'content-type': 'application/json', 'cache-control': 'no-store', 'retry-after': String(RETRY_WHEN_FULL_S) });
  res.end(JSON.stringify({ errors: [{ message: NO_ROOM_MESSAGE, extensions: { code: 'UNAVAILABLE' } }] }));
}

/** The media types Yoga reads a POST body as JSON for (its test: exact, the first of a list). */
const JSON_TYPES = ['application/json', 'application/graphql+json'];

/** The fields of a GraphQL request's JSON body (GraphQL over HTTP). */
const REQUEST_FIELDS = new Set(['query', 'variables', 'operationName', 'extensions']);

/**
 * A body already read, as Yoga's server adapter takes it from `req.body`. A GraphQL request in
 * JSON goes parsed: the adapter answers `json()` with it, and the request has no body stream. A
 * stream would stay referenced from the connection for the subscription's whole life, with the
 * request and the pipeline it is read through (Yoga's body-size limit wraps it): 10-20 KB per
 * idle SSE subscriber. Anything else goes as a stream of its one chunk, for Yoga to read and
 * answer as it would (given a Buffer or a string, the adapter would list the keys of every byte
 * first): a media type Yoga would not read as JSON, invalid JSON, not an object, an empty one
 * (the adapter takes that for no body), or one with other fields, which Yoga refuses (and a
 * `then` among them would make the adapter take the object for a promise).
 */
export function bodyForYoga(req: IncomingMessage, raw: Buffer): unknown {
  const type = req.headers['content-type']?.split(',')[0] ?? '';
  if (JSON_TYPES.some((json) => type === json || type.startsWith(`${json};`))) {
    try {
      const parsed: unknown = JSON.parse(raw.toString('utf8'));
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
        const keys = Object.keys(parsed);
        if (keys.length > 0 && keys.every((key) => REQUEST_FIELDS.has(key))) return parsed;
      }
    } catch {
      // Yoga answers it, as for any request.
    }
  }
  return Readable.from([raw]);
}

/**
 * The request's body, whole; rejects if the client leaves first. Read with listeners removed at
 * the end, not `for await`: Node's async iterator leaves end-of-stream listeners (a dozen
 * closures) on the request, which an SSE response keeps for the stream's life.
 */
function readWhole(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer) => void chunks.push(chunk);
    const settle = (error: Error | null) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', settle);
      req.off('close', onClose);
      if (error) reject(error);
      else resolve(Buffer.concat(chunks));
    };
    const onEnd = () => settle(null);
    const onClose = () => settle(new Error('The client left before its body was in.'));
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', settle);
    req.once('close', onClose);
  });
}

/**
 * Whether a request asks for server-sent events above anything else: its Accept header's first
 * type of the highest quality is `text/event-stream`. Clients that list it among others for
 * every request (urql sends it with its queries, after the JSON types) are not held up by a burst.
 */
export function prefersEventStream(accept: string | undefined): boolean {
  let best = { type: '', q: 0 };
  for (const part of (accept ?? '').toLowerCase().split(',')) {
    const [type = '', ...params] = part.split(';').map((p) => p.trim());
    const qParam = params.find((p) => p.startsWith('q='));
    const q = qParam === undefined ? 1 : Number(qParam.slice(2));
    if (type && q > best.q) best = { type, q };
  }
  return best.type === 'text/event-stream';
}

/**
 * A stream that keeps its setup turn until its first value (a subscription's snapshot read), its
 * end, or `maxMs`, whichever comes first, then gives it back.
 */
export function holdUntilFirst<T>(stream: AsyncIterableIterator<T>, end: () => void, maxMs: number): AsyncIterableIterator<T> {
  return new TurnHoldingStream(stream, endWithin(end, maxMs));
}

/** `end`, called by `maxMs` at the latest: the returned function calls it sooner. */
function endWithin(end: () => void, maxMs: number): () => void {
  const timer = setTimeout(end, maxMs);
  timer.unref();
  return () => {
    clearTimeout(timer);
    end();
  };
}

class TurnHoldingStream<T> implements AsyncIterableIterator<T> {
  constructor(
    private readonly stream: AsyncIterableIterator<T>,
    private end: (() => void) | null,
  ) {}

  private release() {
    const end = this.end;
    this.end = null;
    end?.();
  }

  next(): Promise<IteratorResult<T>> {
    const read = this.stream.next();
    if (this.end) read.then(() => this.release(), () => this.release());
    return read;
  }

  return(value?: unknown): Promise<IteratorResult<T>> {
    this.release();
    return Promise.resolve(this.stream.return?.(value)).then((result) => result ?? { value: undefined, done: true });
  }

  throw(error?: unknown): Promise<IteratorResult<T>> {
    this.release();
    return this.stream.throw ? this.stream.throw(error) : Promise.reject(error);
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}
