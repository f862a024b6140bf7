import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

export const ROOT = new URL('../../', import.meta.url).pathname;

/** A port that was free a moment ago, for child processes that must be told where to listen. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface Child {
  process: ChildProcess;
  output(): string;
  stdout(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();
// A test run that ends (or is interrupted) takes its child processes with it.
process.once('exit', () => {
  for (const child of running) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

/** Runs a command of the project (npm script, tsx entrypoint) as a real child process. */
export function run(command: string, args: string[], env: Record<string, string | undefined> = {}): Child {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so stop() reaches npm's children too
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let out = '';
  let stdout = '';
  const waiters = new Set<() => void>();
  const onData = (isStdout: boolean) => (chunk: Buffer) => {
    out += chunk.toString();
    if (isStdout) stdout += chunk.toString();
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData(true));
  child.stderr!.on('data', onData(false));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return {
    process: child,
    output: () => out,
    stdout: () => stdout,
    exited,
    waitFor(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = out.match(pattern);
          if (match) {
            cleanup();
            resolve(match);
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`Timed out waiting for ${pattern} in output:\n${out.slice(-3000)}`));
        }, timeoutMs);
        void exited.then(() => setTimeout(() => {
          if (!out.match(pattern)) {
            cleanup();
            reject(new Error(`Process exited before printing ${pattern}:\n${out.slice(-3000)}`));
          }
        }, 50));
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid!, signal);
        } catch {
          /* already gone */
        }
      }
      return exited;
    },
  };
}

/**
 * Runs a TypeScript entrypoint in ONE node process (node --import tsx), so that its pid is the
 * program itself: the tsx CLI would put a launcher in between, and a kill -9 of the launcher
 * would leave the real program running.
 */
export const tsx = (entry: string, args: string[], env: Record<string, string | undefined> = {}) =>
  run(process.execPath, ['--import', 'tsx', entry, ...args], env);
