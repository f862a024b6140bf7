import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './process.ts';
import { waitForPort } from './services.ts';
import { until } from './wait.ts';

export interface RedisCluster {
  /** `127.0.0.1:<port>` of each master, as REDIS_CLUSTER_NODES lists them. */
  nodes: string[];
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
// An interrupted run takes its cluster with it.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Free ports, all different (client ports and cluster bus ports are chosen together). */
async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/**
 * A throwaway Redis Cluster of `masters` masters (no replicas) on free ports, in a temp dir:
 * no persistence, each node's cluster bus on a port of its own (`--cluster-port`), slots
 * assigned by `redis-cli --cluster create`. Resolves once every node says `cluster_state:ok`.
 */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'segue-cluster-'));
  const ports = await distinctFreePorts(masters * 2);
  const nodes: string[] = [];
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      const [port, bus] = [ports[i * 2]!, ports[i * 2 + 1]!];
      // Arguments straight to the binary, no shell: `--save ""` is an empty argument.
      const child = spawn(
        'redis-server',
        [
          '--port', String(port),
          '--bind', '127.0.0.1',
          '--cluster-enabled', 'yes',
          '--cluster-config-file', join(dir, `nodes-${port}.conf`),
          '--cluster-port', String(bus),
          '--cluster-node-timeout', '5000',
          '--dir', dir,
          '--save', '',
          '--appendonly', 'no',
        ],
        { stdio: 'ignore' },
      );
      running.add(child);
      child.once('exit', () => running.delete(child));
      children.push(child);
      nodes.push(`127.0.0.1:${port}`);
    }
    await Promise.all(ports.filter((_, i) => i % 2 === 0).map((port) => waitForPort('127.0.0.1', port, 10_000)));
    await promisify(execFile)('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30_000 });
    // `create` returns once the nodes agree on the slots; each node says ok a moment later.
    await Promise.all(
      nodes.map(async (node) => {
        const [host, port] = node.split(':');
        const redis = new Redis({ host, port: Number(port), lazyConnect: true, maxRetriesPerRequest: 1 });
        try {
          await until(async () => /cluster_state:ok/.test(String(await redis.cluster('INFO'))), {
            timeoutMs: 20_000,
            intervalMs: 100,
            what: `cluster_state:ok on ${node}`,
          });
        } finally {
          redis.disconnect();
        }
      }),
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes, stop };
}
