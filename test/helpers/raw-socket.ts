import WebSocket from 'ws';

/** How a hand-made socket ended: code, reason and when (performance.now()). */
export type SocketClose = { code: number; reason: string; at: number };

/**
 * A WebSocket by hand (no graphql-ws client), open: every message it received, parsed, and how it
 * closed. `startedAt` is taken before it connects, so no server-side deadline starts earlier;
 * `openedAt` once it is open.
 */
export async function openRawSocket<M = { type: string }>(url: string, protocols: string[] = ['graphql-transport-ws']) {
  const startedAt = performance.now();
  const socket = new WebSocket(url, protocols);
  const messages: M[] = [];
  let closed: SocketClose | null = null;
  socket.on('message', (data) => messages.push(JSON.parse(String(data)) as M));
  socket.on('close', (code, reason) => (closed = { code, reason: String(reason), at: performance.now() }));
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  return { socket, messages, startedAt, openedAt: performance.now(), closed: (): SocketClose | null => closed };
}
