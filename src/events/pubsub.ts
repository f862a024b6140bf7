import { RedisPubSub } from 'graphql-redis-subscriptions';
import type { RedisTarget } from '../config.ts';
import { closeRedis, createRedis } from '../redis.ts';
import { decodeMessage, encodeMessage, type Message } from './messages.ts';

export type PubSub = RedisPubSub;

/**
 * Redis pub/sub through graphql-redis-subscriptions: one publisher and one subscriber connection.
 * Messages are encoded by messages.ts, which brings dates back as Dates by the model's columns,
 * never by what a string looks like.
 */
export function createPubSub(redis: RedisTarget | string): RedisPubSub {
  const subscriber = createRedis(redis, 'subscriber');
  // graphql-redis-subscriptions drops the promises of its UNSUBSCRIBE and PUNSUBSCRIBE: one sent
  // as the connection closes (a stream ending at shutdown) would fail as an unhandled rejection.
  for (const command of ['unsubscribe', 'punsubscribe'] as const) {
    const send = subscriber[command].bind(subscriber) as (...args: unknown[]) => Promise<unknown>;
    (subscriber as unknown as Record<string, unknown>)[command] = (...args: unknown[]) => {
      const reply = send(...args);
      reply.catch(() => undefined);
      return reply;
    };
  }
  return new RedisPubSub({
    publisher: createRedis(redis, 'publisher'),
    subscriber,
    serializer: (message: Message) => encodeMessage(message),
    deserializer: (raw: Buffer | string) => decodeMessage(raw),
  });
}

export async function closePubSub(pubsub: RedisPubSub) {
  await closeRedis(pubsub.getPublisher(), pubsub.getSubscriber());
}
