import { describe, expect, it } from 'vitest';
import { closePubSub, createPubSub } from '../src/events/pubsub.ts';

describe('pub/sub at shutdown', () => {
  it('a SUBSCRIBE cut short by closing the connection fails its caller only: no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', record);
    try {
      for (let round = 0; round < 5; round++) {
        const pubsub = createPubSub(process.env.REDIS_URL!);
        // As an API instance closed just after it started: the subscription is still on its way.
        const subscribing = pubsub.subscribe(`test:shutdown:${process.pid}:${round}`, () => undefined);
        const outcome = subscribing.then(
          () => 'subscribed',
          (err: Error) => err.message,
        );
        await closePubSub(pubsub);
        expect(await outcome).toMatch(/subscribed|Connection is closed/);
      }
      // Rejections nobody handled are reported after the microtasks of the turn that made them.
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', record);
    }
  });
});
