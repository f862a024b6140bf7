import { RedisPubSub } from 'graphql-redis-subscriptions';
import type { RedisTarget } from '../config.ts';
import { closeRedis, createRedis } from '../redis.ts';
import { decodeMessage, encodeMessage, type Message } from './messages.ts';

export type PubSub = RedisPubSub;

type Pending = { pending: { catch(onRejected: () => void): unknown } };

/**
 * graphql-redis-subscriptions keeps a second promise for each SUBSCRIBE on its way, for callers
 * that subscribe to the same channel meanwhile, and rejects it with the SUBSCRIBE even when no
 * such caller came: a SUBSCRIBE cut short by closing the connection (an instance shutting down
 * just after it started) would fail as an unhandled rejection. The caller's own promise still
 * rejects; only that spare one is handled here.
 */
class ShutdownSafePubSub extends RedisPubSub {
  override subscribe<T = unknown>(trigger: string, onMessage: (message: T) => unknown, options?: unknown): Promise<number> {
    const subscribed = super.subscribe(trigger, onMessage, options);
    // The library's own fields, read as it reads them; should a version rename them, nothing is
    // handled here (and test/pubsub-shutdown.test.ts fails), but subscribing still works.
    const internals = this as unknown as {
      subsPendingRefsMap?: Map<string, Pending>;
      triggerTransform?: (trigger: string, options: unknown) => string;
    };
    const key = internals.triggerTransform ? internals.triggerTransform(trigger, options) : trigger;
    internals.subsPendingRefsMap?.get(key)?.pending.catch(() => undefined);
    return subscribed;
  }
}

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
  return new ShutdownSafePubSub({
    publisher: createRedis(redis, 'publisher'),
    subscriber,
    serializer: (message: Message) => encodeMessage(message),
    deserializer: (raw: Buffer | string) => decodeMessage(raw),
  });
}

export async function closePubSub(pubsub: RedisPubSub) {
  await closeRedis(pubsub.getPublisher(), pubsub.getSubscriber());
}
