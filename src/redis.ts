import { Redis, type RedisOptions } from 'ioredis';

/**
 * ioredis connections by role. BullMQ workers block on Redis and must retry forever
 * (maxRetriesPerRequest: null); producers (the API enqueuing) should fail fast while Redis is down
 * (enableOfflineQueue: false) so a request errors instead of hanging; pub/sub needs its own
 * connection per direction.
 */
export type RedisRole = 'worker' | 'producer' | 'publisher' | 'subscriber' | 'client';

export function createRedis(url: string, role: RedisRole, extra: RedisOptions = {}): Redis {
  const options: RedisOptions = {
    connectionName: `segue-${role}`,
    ...(role === 'worker' || role === 'subscriber' ? { maxRetriesPerRequest: null } : {}),
    ...(role === 'producer' ? { enableOfflineQueue: false, maxRetriesPerRequest: 1 } : {}),
    // Commands issued in the same tick go out in one write (many jobs publish at once). While
    // Redis is down a publish gives up after 2 s instead of holding the request that made the
    // change (subscribers recover from their snapshot).
    ...(role === 'publisher' ? { enableAutoPipelining: true, commandTimeout: 2_000, maxRetriesPerRequest: 2 } : {}),
    // A subscriber may already be in subscriber mode when the ready check (INFO) would run after a
    // (re)connect, and Redis refuses INFO there; subscriptions are restored by ioredis anyway.
    ...(role === 'subscriber' ? { enableReadyCheck: false } : {}),
    ...extra,
  };
  const redis = new Redis(url, options);
  // Connection errors surface on the commands that need Redis (and in /ready); without a listener
  // ioredis would also print each reconnect attempt to stderr.
  redis.on('error', () => undefined);
  return redis;
}

/** Closes connections we created; BullMQ never closes a connection it was given. */
export async function closeRedis(...connections: Array<Redis | undefined>) {
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
