import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of PostgreSQL that can lose the answer to a COMMIT: the server commits,
 * the client never hears it (its connection drops), as when PostgreSQL or the network dies at
 * that instant. It reads just enough of the frontend protocol to find message boundaries and the
 * simple queries a transaction is made of (node-postgres sends BEGIN and COMMIT as simple queries;
 * statements travel in Parse messages, whose text it records for the test to check).
 *
 * With `killAsReady`, every connection is killed as it opens instead: the termination PostgreSQL
 * sends on a restart or pg_terminate_backend (FATAL 57P01) leaves in the same write as the
 * connection's first ReadyForQuery, and the connection ends.
 */
export interface PgProxy {
  url: string;
  /** The next COMMIT's answer is lost. Resolves with the SQL of the transaction it ended. */
  loseNextCommitAnswer(): Promise<string[]>;
  close(): Promise<void>;
}

/** An ErrorResponse: FATAL 57P01, as PostgreSQL terminates a connection. */
const TERMINATED = (() => {
  const fields = Buffer.from('SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0');
  const head = Buffer.alloc(5);
  head.write('E', 0);
  head.writeInt32BE(4 + fields.length, 1);
  return Buffer.concat([head, fields]);
})();

const SSL_REQUEST = 80877103;
const GSS_REQUEST = 80877104;

export async function startPgProxy(target: URL, options: { killAsReady?: boolean } = {}): Promise<PgProxy> {
  const host = target.hostname;
  const port = Number(target.port || 5432);
  let armed: ((sql: string[]) => void) | null = null;
  const sockets = new Set<Socket>();

  const server: Server = createServer((client) => {
    const upstream = connect({ host, port });
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', () => {
      sockets.delete(client);
      upstream.destroy();
    });
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    client.on('error', drop);
    upstream.on('error', drop);

    let buffered = Buffer.alloc(0);
    let started = false;
    let transaction: string[] = [];
    let losing: ((sql: string[]) => void) | null = null;
    let answer = Buffer.alloc(0);

    client.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      // Forward whole messages only, looking at each.
      for (;;) {
        if (!started) {
          if (buffered.length < 8) return;
          const length = buffered.readInt32BE(0);
          if (buffered.length < length) return;
          const code = buffered.readInt32BE(4);
          // An SSL or GSS request is answered by the server before the real startup message.
          if (code !== SSL_REQUEST && code !== GSS_REQUEST) started = true;
          upstream.write(buffered.subarray(0, length));
          buffered = buffered.subarray(length);
          continue;
        }
        if (buffered.length < 5) return;
        const type = String.fromCharCode(buffered[0]!);
        const length = buffered.readInt32BE(1) + 1;
        if (buffered.length < length) return;
        const message = buffered.subarray(0, length);
        buffered = buffered.subarray(length);
        if (type === 'P') {
          // Parse: name\0 query\0 ...
          const body = message.subarray(5);
          const nameEnd = body.indexOf(0);
          transaction.push(body.subarray(nameEnd + 1, body.indexOf(0, nameEnd + 1)).toString());
        } else if (type === 'Q') {
          const text = message.subarray(5, message.length - 1).toString().trim();
          const query = text.toUpperCase();
          // BEGIN, alone or with statements sent in the same simple query (the claim's slot lock).
          if (query === 'BEGIN' || query.startsWith('BEGIN;')) transaction = query === 'BEGIN' ? [] : [text.slice('BEGIN;'.length).trim()];
          if (query === 'COMMIT' && armed) {
            losing = armed;
            armed = null;
          }
        }
        upstream.write(message);
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (losing) {
        // The server has committed and is answering: the client never gets the answer.
        const done = losing;
        losing = null;
        drop();
        done(transaction);
        return;
      }
      if (!options.killAsReady) return void client.write(chunk);
      // The server's messages, whole (a type byte and a length), passed on as they come (a login
      // that asks for a password goes through), up to the first ReadyForQuery ('Z').
      answer = Buffer.concat([answer, chunk]);
      let at = 0;
      while (answer.length - at >= 5) {
        const end = at + 1 + answer.readInt32BE(at + 1);
        if (answer.length < end) break;
        if (answer[at] === 0x5a) {
          client.end(Buffer.concat([answer.subarray(0, end), TERMINATED]));
          upstream.destroy();
          return;
        }
        at = end;
      }
      client.write(answer.subarray(0, at));
      answer = answer.subarray(at);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: proxyPort } = server.address() as { port: number };
  const url = new URL(target);
  url.host = `127.0.0.1:${proxyPort}`;
  return {
    url: url.toString(),
    loseNextCommitAnswer() {
      return new Promise((resolve) => (armed = resolve));
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
