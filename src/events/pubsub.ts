import { RedisPubSub } from 'graphql-redis-subscriptions';
import { closeRedis, createRedis } from '../redis.ts';

const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** Rows travel as JSON; their DateTime fields come back as Dates for the GraphQL layer. */
const reviver = (_key: string, value: unknown) => (typeof value === 'string' && ISO_DATE.test(value) ? new Date(value) : value);

export type PubSub = RedisPubSub;

/** Redis pub/sub through graphql-redis-subscriptions: one publisher and one subscriber connection. */
export function createPubSub(redisUrl: string): RedisPubSub {
  return new RedisPubSub({
    publisher: createRedis(redisUrl, 'publisher'),
    subscriber: createRedis(redisUrl, 'subscriber'),
    reviver,
  });
}

export async function closePubSub(pubsub: RedisPubSub) {
  await closeRedis(pubsub.getPublisher() as never, pubsub.getSubscriber() as never);
}
