import { execFileSync, execSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';

/** True when something accepts TCP connections on host:port. */
export function isListening(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export async function waitForPort(host: string, port: number, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await isListening(host, port)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`Nothing is listening on ${host}:${port} after ${timeoutMs} ms.`);
}

/**
 * Starts the local PostgreSQL when it does not answer, the way this machine's services are
 * started (Debian's pg_ctlcluster). Elsewhere, start it yourself (e.g. `docker compose up -d postgres`).
 */
export async function ensurePostgres(url: URL) {
  const host = url.hostname;
  const port = Number(url.port || 5432);
  if (await isListening(host, port)) return;
  if (!['127.0.0.1', 'localhost', '::1'].includes(host) || !existsSync('/etc/postgresql')) {
    throw new Error(`PostgreSQL at ${host}:${port} does not answer; start it (docker compose up -d postgres).`);
  }
  const version = readdirSync('/etc/postgresql')[0]!;
  execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], { stdio: 'inherit' });
  await waitForPort(host, port);
}

/** Starts a local, non-persistent Redis when none answers. */
export async function ensureRedis(url: URL) {
  const host = url.hostname;
  const port = Number(url.port || 6379);
  if (await isListening(host, port)) return;
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) {
    throw new Error(`Redis at ${host}:${port} does not answer; start it (docker compose up -d redis).`);
  }
  execSync(`redis-server --daemonize yes --bind 127.0.0.1 --port ${port} --save "" --appendonly no`, { stdio: 'inherit' });
  await waitForPort(host, port);
}

/** A throwaway Redis of a test's own (no persistence), for tests that wipe or stop Redis. */
export async function startPrivateRedis(port: number) {
  const { spawn } = await import('node:child_process');
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  await waitForPort('127.0.0.1', port);
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
    /** Freezes the server (SIGSTOP): connections stay open and commands are taken, none answered. */
    pause: () => child.kill('SIGSTOP'),
    /** Lets a paused server go on (SIGCONT): it answers what it was sent meanwhile. */
    resume: () => child.kill('SIGCONT'),
  };
}

/**
 * A throwaway PostgreSQL server of a test's own (initdb in a temp dir, its own port), so a test
 * can stop and start it without touching the machine's server. Needs the server binaries
 * (Debian: /usr/lib/postgresql/<v>/bin) and, as root, the postgres user to run them.
 */
export async function startPrivatePostgres(port: number) {
  const { execFileSync } = await import('node:child_process');
  const { mkdtempSync, chownSync } = await import('node:fs');
  const { tmpdir, userInfo } = await import('node:os');
  const { join } = await import('node:path');
  const version = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql').sort().at(-1) : undefined;
  if (!version) throw new Error('PostgreSQL server binaries not found (/usr/lib/postgresql/<v>/bin).');
  const bin = `/usr/lib/postgresql/${version}/bin`;
  const dir = mkdtempSync(join(tmpdir(), 'segue-pg-'));
  const asRoot = userInfo().uid === 0;
  const pgUser = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  if (asRoot) chownSync(dir, pgUser, pgUser);
  const as = (args: string[]) => (asRoot ? ['runuser', ['-u', 'postgres', '--', ...args]] : [args[0]!, args.slice(1)]) as [string, string[]];
  const exec = (args: string[]) => execFileSync(...as(args), { stdio: 'pipe' });
  exec([`${bin}/initdb`, '-D', join(dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const ctl = (action: 'start' | 'stop') =>
    exec(
      action === 'start'
        ? [`${bin}/pg_ctl`, '-D', join(dir, 'data'), '-l', join(dir, 'log'), '-w', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']
        : [`${bin}/pg_ctl`, '-D', join(dir, 'data'), '-w', '-m', 'fast', 'stop'],
    );
  ctl('start');
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/segue`,
    start: () => ctl('start'),
    stop: () => ctl('stop'),
    async close() {
      try {
        ctl('stop');
      } catch {
        /* already stopped */
      }
      execFileSync('rm', ['-rf', dir]);
    },
  };
}
