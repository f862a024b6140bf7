/**
 * Raw BullMQ: no-op jobs per second through one Worker on this machine's Redis, the ceiling any
 * BullMQ pipeline works under. `npx tsx bench/bullmq-raw.ts [N=5000] [concurrency=100]`.
 */
import { Queue, Worker } from 'bullmq';
import type { RedisTarget } from '../src/config.ts';
import { closeRedis, createRedis } from '../src/redis.ts';

export async function rawBullmqJobsPerSecond(redis: RedisTarget | string, n: number, concurrency: number) {
  // A hash tag keeps a queue's keys in one slot on a Redis Cluster.
  const prefix = `{rawbench${process.pid}}`;
  const connection = createRedis(redis, 'worker');
  const queue = new Queue('noop', { connection, prefix });
  await queue.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'noop', data: { i }, opts: { removeOnComplete: true } })));
  let done = 0;
  const started = performance.now();
  const finished = new Promise<void>((resolve) => {
    const worker = new Worker('noop', async () => undefined, { connection: createRedis(redis, 'worker'), prefix, concurrency });
    worker.on('completed', () => {
      if (++done === n) void worker.close().then(() => resolve());
    });
  });
  await finished;
  const seconds = (performance.now() - started) / 1000;
  await queue.obliterate({ force: true });
  await queue.close();
  await closeRedis(connection);
  return n / seconds;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = Number(process.argv[2] ?? 5000);
  const concurrency = Number(process.argv[3] ?? 100);
  const rate = await rawBullmqJobsPerSecond(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', n, concurrency);
  console.log(`raw BullMQ: ${n} no-op jobs, concurrency ${concurrency}: ${rate.toFixed(0)} jobs/s`);
  process.exit(0);
}
