import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisTarget } from './config.ts';

/** A connection to one Redis server or to a Redis Cluster: every role works on either. */
export type RedisClient = Redis | Cluster;

/**
 * ioredis connections by role. BullMQ workers block on Redis and must retry forever
 * (maxRetriesPerRequest: null); producers (the API enqueuing) should fail fast while Redis is down
 * (enableOfflineQueue: false) so a request errors instead of hanging; pub/sub needs its own
 * connection per direction.
 */
export type RedisRole = 'worker' | 'producer' | 'publisher' | 'subscriber' | 'client';

/** How long a command on a producer connection waits for Redis' answer. */
export const PRODUCER_COMMAND_TIMEOUT_MS = 5_000;

/** Options of one connection (on a cluster: of each node's connection). */
function roleOptions(role: RedisRole): RedisOptions {
  return {
    connectionName: `segue-${role}`,
    ...(role === 'worker' || role === 'subscriber' ? { maxRetriesPerRequest: null } : {}),
    // A Redis that keeps its connections but answers nothing (paused, swapping, a partition that
    // sends no reset) would hold every caller forever: a command gives up after 5 s, and what
    // waits on it (a request adding jobs, a reconciler pass) goes on as while Redis is down.
    ...(role === 'producer' ? { maxRetriesPerRequest: 1, commandTimeout: PRODUCER_COMMAND_TIMEOUT_MS } : {}),
    // While Redis is down a publish gives up after 2 s instead of holding the request that made
    // the change (subscribers recover from their snapshot).
    ...(role === 'publisher' ? { commandTimeout: 2_000, maxRetriesPerRequest: 2 } : {}),
  };
}

/**
 * A connection for `role` to REDIS_URL, or to the cluster of REDIS_CLUSTER_NODES (a URL string
 * is one server). On a cluster, keys are routed to their slot's node, PUBLISH reaches every node's
 * subscribers, and (P)SUBSCRIBE goes through one subscriber connection to any node (ioredis moves
 * it, with its subscriptions, when that node goes away).
 */
export function createRedis(target: RedisTarget | string, role: RedisRole, extra: RedisOptions = {}): RedisClient {
  const where: RedisTarget = typeof target === 'string' ? { mode: 'single', url: target } : target;
  const redis = where.mode === 'cluster' ? createCluster(where.nodes, role, extra) : createServer(where.url, role, extra);
  // Connection errors surface on the commands that need Redis (and in /ready); without a listener
  // ioredis would also print each reconnect attempt to stderr.
  redis.on('error', () => undefined);
  return redis;
}

function createServer(url: string, role: RedisRole, extra: RedisOptions): Redis {
  return new Redis(url, {
    ...roleOptions(role),
    ...(role === 'producer' ? { enableOfflineQueue: false } : {}),
    // Commands issued in the same tick go out in one write (many jobs publish at once).
    ...(role === 'publisher' ? { enableAutoPipelining: true } : {}),
    // A subscriber may already be in subscriber mode when the ready check (INFO) would run after a
    // (re)connect, and Redis refuses INFO there; subscriptions are restored by ioredis anyway.
    ...(role === 'subscriber' ? { enableReadyCheck: false } : {}),
    ...extra,
  });
}

function createCluster(nodes: readonly string[], role: RedisRole, extra: RedisOptions): Cluster {
  const seeds = nodes.map((node) => new URL(node));
  // The config gave every node the same credentials and TLS; they apply to the nodes discovered too.
  const first = seeds[0]!;
  const tls = first.protocol === 'rediss:';
  const options: ClusterOptions = {
    redisOptions: {
      ...roleOptions(role),
      ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
      ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
      ...(tls ? { tls: {} } : {}),
      ...extra,
    },
    // Fail fast while the cluster is down, as on one server: the offline queue is the cluster's
    // (each node's connection is made on first use and must queue its first commands).
    ...(role === 'producer' ? { enableOfflineQueue: false } : {}),
    ...(role === 'publisher' ? { enableAutoPipelining: true } : {}),
    // With TLS, keep the nodes' host names: certificates name hosts, not the addresses they resolve to.
    ...(tls ? { dnsLookup: (address: string, callback: (err: null, address: string) => void) => callback(null, address) } : {}),
  };
  return new Cluster(
    seeds.map((seed) => ({ host: seed.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(seed.port || 6379) })),
    options,
  );
}

/** Closes connections we created; BullMQ never closes a connection it was given. */
export async function closeRedis(...connections: Array<RedisClient | undefined>) {
  await Promise.all(
    connections.map(async (c) => {
      if (!c || c.status === 'end') return;
      // QUIT on a connection that is not up waits for it to come up, maybe forever.
      if (c.status !== 'ready') return void c.disconnect();
      try {
        await c.quit();
      } catch {
        c.disconnect();
      }
    }),
  );
}
