import { CloseCode, GRAPHQL_TRANSPORT_WS_PROTOCOL, handleProtocols, makeServer, type ServerOptions } from 'graphql-ws';
import type { Socket } from 'node:net';
import type { WebSocket, WebSocketServer } from 'ws';
import { SharedTexts } from '../events/shared-texts.ts';
import type { Logger } from '../logger.ts';

/** What every connection carries for graphql-ws' hooks: its socket (not the upgrade request). */
export type SocketExtra = { socket: WebSocket };

/**
 * graphql-ws' protocol (its makeServer) on `ws` sockets, as graphql-ws/use/ws binds it, but with
 * nothing per connection beyond the protocol's own state. use/ws gives every socket its own ping
 * interval, pong timer and half a dozen closures and bound listeners; with 10,000 idle browsers
 * attached those are a tenth of the API's memory, and their timers fire 800 times a second. Here
 * a connection is one small object whose listeners are shared functions, and one sweep, in
 * slices, pings every socket once per `keepAliveMs` and ends those that did not answer the
 * previous ping (the same bound as use/ws: no pong within `keepAliveMs` of a ping).
 *
 * The wait for connection_init (`connectionInitWaitTimeout`, graphql-ws' 3 s by default; 0 or
 * Infinity: none) is kept here too: a socket that has not sent it by then is closed with 4408, as
 * graphql-ws does, within a quarter of the wait after it. graphql-ws' own wait is a timer per
 * connection that its closure keeps for as long as the connection lives, long after it fired
 * (about 200 B per idle subscriber); here only the connections still waiting are held, in one
 * map, and one check ends the late ones.
 */
export function serveGraphqlWs<P extends Record<string, unknown> | undefined, E extends SocketExtra>(
  options: ServerOptions<P, E>,
  wss: WebSocketServer,
  extraOf: (socket: WebSocket) => E,
  log: Logger,
  { keepAliveMs = 12_000, refuse = () => false }: { keepAliveMs?: number; refuse?: () => boolean } = {},
) {
  const initWaitMs = options.connectionInitWaitTimeout ?? CONNECTION_INIT_WAIT_MS;
  const waitsForInit = initWaitMs > 0 && Number.isFinite(initWaitMs);
  const protocol = makeServer<P, E>({ ...options, connectionInitWaitTimeout: Infinity });
  // Connections still waiting for their connection_init: one sent, a connection leaves the map at
  // the next check; closed, at once (the close listener). Checked INIT_CHECKS times per wait, so
  // a late one is closed within a quarter of the wait after it.
  const awaitingInit = new Map<Connection, number>();
  const listeners = socketListeners(log, options.jsonMessageReviver, (connection) => awaitingInit.delete(connection));
  wss.options.handleProtocols = handleProtocols;
  // ws passes on the HTTP server's errors (a failed accept, EMFILE in a reconnect burst); without
  // a listener they would end the process.
  wss.on('error', (error) => log.error({ err: error }, 'WebSocket server error'));
  let connected = 0;
  wss.on('connection', (socket, request) => {
    // No room for it (`refuse`): closed before anything is kept for it, to come back later. ws
    // reads on until the client's close frame: a bad frame meanwhile is an 'error', which needs a
    // listener or it would end the process.
    if (refuse()) {
      socket.on('error', ignore);
      return socket.close(TRY_AGAIN_LATER, 'Try Again Later');
    }
    // The TCP socket under it (the upgrade's), kept so that messages sent together leave together.
    // (ws' own `_socket`: the same object, so nothing more is kept; the request itself is not.)
    const connection = new Connection(socket, request.socket, log, connected++ % SWEEP_SLICES);
    connections.set(socket, connection);
    // As graphql-ws: a socket of another subprotocol is closed at once (4406), with no wait.
    if (waitsForInit && socket.protocol === GRAPHQL_TRANSPORT_WS_PROTOCOL) awaitingInit.set(connection, performance.now() + initWaitMs);
    socket.on('message', listeners.message);
    socket.on('pong', listeners.pong);
    // `on`, not `once`: once wraps each listener in a closure per socket ('close' fires once anyway).
    socket.on('error', listeners.error);
    socket.on('close', listeners.close);
    connection.closed = protocol.opened(connection, extraOf(socket));
  });
  // The sweep runs in slices: each tick visits one slice of the connections, so every socket is
  // visited once per `keepAliveMs` and 10,000 pings never go out in one turn of the event loop
  // (that would hold up every event for as long). Which slices are due comes from the clock, not
  // from counting ticks: late ticks would otherwise stretch the period twelve times over.
  const started = performance.now();
  let nextTick = 0;
  const due = new Array<boolean>(SWEEP_SLICES).fill(false);
  const sweep = setInterval(() => {
    const now = Math.floor(((performance.now() - started) * SWEEP_SLICES) / keepAliveMs);
    if (now < nextTick) return;
    due.fill(false);
    for (let tick = Math.max(nextTick, now - SWEEP_SLICES + 1); tick <= now; tick++) due[tick % SWEEP_SLICES] = true;
    nextTick = now + 1;
    for (const socket of wss.clients) {
      const connection = connections.get(socket);
      if (!connection || !due[connection.slice] || socket.readyState !== socket.OPEN) continue;
      if (connection.awaitingPong) {
        socket.terminate();
        continue;
      }
      connection.awaitingPong = true;
      socket.ping();
    }
  }, keepAliveMs / SWEEP_SLICES);
  sweep.unref();
  const initCheck = waitsForInit ? setInterval(() => {
    const now = performance.now();
    for (const [connection, deadline] of awaitingInit) {
      if (connection.initReceived) awaitingInit.delete(connection);
      else if (now >= deadline) {
        awaitingInit.delete(connection);
        connection.close(CloseCode.ConnectionInitialisationTimeout, 'Connection initialisation timeout');
      }
    }
  }, initWaitMs / INIT_CHECKS) : undefined;
  initCheck?.unref();
  return {
    /** How many connections wait for their connection_init now. */
    waitingForInit: () => awaitingInit.size,
    /** Closes every socket (clients get 1001 Going Away) and stops accepting new ones. */
    async dispose() {
      clearInterval(sweep);
      clearInterval(initCheck);
      awaitingInit.clear();
      for (const socket of wss.clients) socket.close(1001, 'Going away');
      wss.removeAllListeners();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** graphql-ws' `jsonMessageReviver`, applied where the message is parsed: here. */
type JsonReviver = (this: unknown, key: string, value: unknown) => unknown;

/**
 * Close code for a connection refused for want of room (RFC 6455's Try Again Later): graphql-ws
 * clients reconnect after it, with their backoff, and subscribe again.
 */
export const TRY_AGAIN_LATER = 1013;

/** Slices of the keepalive sweep (one tick every `keepAliveMs / SWEEP_SLICES`). */
const SWEEP_SLICES = 12;

/** How long a new socket may take to send connection_init (graphql-ws' default). */
const CONNECTION_INIT_WAIT_MS = 3_000;

/** Checks of the connection_init wait per `initWaitMs`. */
const INIT_CHECKS = 4;

/** The connection of each socket: a WeakMap, so nothing is added to the socket objects themselves. */
const connections = new WeakMap<WebSocket, Connection>();

/** What graphql-ws' protocol sees of a socket, with prototype methods (one object per connection). */
class Connection {
  /** graphql-ws' message handler for this connection. */
  private handle: ((data: string) => Promise<void>) | null = null;
  /** Ends graphql-ws' state for this connection (its subscriptions returned). */
  closed: ((code?: number, reason?: string) => Promise<void>) | null = null;
  /** A ping went out and no pong has come back yet. */
  awaitingPong = false;
  /** connection_init has come (graphql-ws answers it; this only ends the wait for it). */
  initReceived = false;
  /** The TCP socket is corked until the messages sent in this turn of the event loop are all queued. */
  private corked = false;

  constructor(
    private readonly socket: WebSocket,
    private readonly tcp: Socket,
    private readonly log: Logger,
    /** Which tick of the keepalive sweep visits this connection. */
    readonly slice: number,
  ) {}

  get protocol() {
    return this.socket.protocol;
  }

  /**
   * graphql-ws sends a subscription's messages one after another, awaiting each: a snapshot of
   * 20 rows is 20 messages. Waiting for each to be written made each its own write to the kernel
   * (a syscall per frame: 200,000 for 10,000 subscribers reconnecting, the largest part of a
   * burst's CPU). While little is queued for the client, a send is done as soon as its frame is
   * queued, and the TCP socket stays corked until the current turn's messages are all queued,
   * so they leave in one write. Past QUEUED_MAX, a send waits for its write, as before: a client
   * that does not read holds up its own subscriptions (which end at SUBSCRIPTION_BUFFER), and what
   * is queued for it stays under QUEUED_MAX plus one frame per subscription. (With
   * permessage-deflate, which Segue does not turn on, ws would compress later: the order and the
   * bound would hold, the single write would not.)
   */
  send(data: string): Promise<void> {
    const socket = this.socket;
    if (socket.readyState !== socket.OPEN) return Promise.resolve();
    if (socket.bufferedAmount >= QUEUED_MAX) {
      return new Promise((resolve, reject) => socket.send(data, (error) => (error ? reject(error) : resolve())));
    }
    if (!this.corked) {
      this.corked = true;
      this.tcp.cork();
      // After the microtasks now queued (graphql-ws' next send is one of them) have run.
      process.nextTick(uncork, this);
    }
    // A failed write destroys the TCP socket; ws then closes (1006), and 'close' ends the subscriptions.
    socket.send(data, ignore);
    return SENT;
  }

  /** Lets the turn's frames go, in one write. */
  flush() {
    this.corked = false;
    this.tcp.uncork();
  }

  close(code?: number, reason?: string) {
    this.socket.close(code, reason);
  }

  onMessage(handle: (data: string) => Promise<void>) {
    this.handle = handle;
  }

  received(text: string, reviver: JsonReviver | undefined) {
    if (!this.handle) return;
    // graphql-ws keeps what it is handed in the frame of a subscribe for as long as the
    // subscription lives. Handed the parsed message, with its query text shared by every
    // subscription that sends the same one, it keeps neither the raw text (about 270 B) nor a
    // copy of the query per subscriber. Malformed JSON goes to graphql-ws as text: it closes the
    // connection with 4400, as it would have.
    let message: unknown = text;
    try {
      const parsed: unknown = JSON.parse(text, reviver);
      // Only an object: graphql-ws would parse a string again (a doubly encoded message, which
      // it refuses as text).
      if (typeof parsed === 'object' && parsed !== null) {
        message = withSharedQuery(parsed);
        if ((parsed as { type?: unknown }).type === 'connection_init') this.initReceived = true;
      }
    } catch {
      /* graphql-ws answers it */
    }
    // graphql-ws takes a parsed message as well as text (its parseMessage validates either).
    this.handle(message as string).catch((error: unknown) => {
      // As use/ws does: a failure in a hook closes the connection with 1011, never the process.
      this.log.error({ err: error }, 'a graphql-ws message failed; closing its connection');
      this.socket.close(CloseCode.InternalServerError, 'Internal server error');
    });
  }
}

/**
 * Bytes queued for a client past which a send waits for its write (see Connection.send): more
 * than most snapshots (20 whole rows are about 14 KB), little beside a connection's other memory.
 */
export const QUEUED_MAX = 16 * 1024;
const SENT = Promise.resolve();
const ignore = () => undefined;
const uncork = (connection: Connection) => connection.flush();

/** Query texts of subscribes, each kept once. */
const queryTexts = new SharedTexts(500, 4_096);

/** The message, its payload's query replaced by an equal text already kept. */
function withSharedQuery(message: object): object {
  // Only subscribes, the messages whose frames live on: no other message churns the texts kept.
  if ((message as { type?: unknown }).type !== 'subscribe') return message;
  const payload = (message as { payload?: { query?: unknown } | null }).payload;
  if (payload && typeof payload.query === 'string') payload.query = queryTexts.of(payload.query);
  return message;
}

/** Listeners shared by every socket of a server: `this` is the socket that emitted. */
function socketListeners(log: Logger, reviver: JsonReviver | undefined, forget: (connection: Connection) => void) {
  return {
    message(this: WebSocket, data: Buffer | ArrayBuffer | Buffer[]) {
      connections.get(this)?.received(String(data), reviver);
    },
    pong(this: WebSocket) {
      const connection = connections.get(this);
      if (connection) connection.awaitingPong = false;
    },
    error(this: WebSocket, error: Error) {
      log.warn({ err: error }, 'WebSocket error; closing the connection');
      this.close(CloseCode.InternalServerError, 'Internal server error');
    },
    close(this: WebSocket, code: number, reason: Buffer) {
      const connection = connections.get(this);
      connections.delete(this);
      if (connection) forget(connection);
      connection?.closed?.(code, String(reason)).catch((error: unknown) => log.warn({ err: error }, 'ending a closed connection\'s subscriptions failed'));
    },
  };
}
