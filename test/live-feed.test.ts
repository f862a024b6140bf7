import { afterAll, describe, expect, it } from 'vitest';
import { LiveFeed } from '../src/events/live.ts';
import { closePubSub, createPubSub } from '../src/events/pubsub.ts';

const pubsub = createPubSub(process.env.REDIS_URL!);
afterAll(() => closePubSub(pubsub));

describe('LiveFeed (one subscriber’s buffer over Redis pub/sub)', () => {
  it('a subscriber that stops reading is ended with LIMIT_EXCEEDED; the others still get every event', async () => {
    const channel = `test:live:${process.pid}:${Date.now()}`;
    const slow = await LiveFeed.subscribe<{ n: number }>(pubsub, [{ trigger: channel, pattern: false }], 10);
    const fast = await LiveFeed.subscribe<{ n: number }>(pubsub, [{ trigger: channel, pattern: false }], 10);
    const received: number[] = [];
    const reading = (async () => {
      for await (const event of fast) {
        received.push(event.n);
        if (event.n === 49) break;
      }
    })();
    for (let n = 0; n < 50; n++) await pubsub.publish(channel, { n });
    await reading;
    expect(received).toEqual(Array.from({ length: 50 }, (_, n) => n));
    // The slow one buffered 10, then was ended.
    const got: number[] = [];
    await expect(
      (async () => {
        for await (const event of slow) got.push(event.n);
      })(),
    ).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' });
    expect(got).toEqual(Array.from({ length: 10 }, (_, n) => n));
  });

  it('is live at Redis when subscribe() resolves: nothing published afterwards is missed', async () => {
    const channel = `test:live2:${process.pid}:${Date.now()}`;
    const feed = await LiveFeed.subscribe<{ n: number }>(pubsub, [{ trigger: channel, pattern: false }], 100);
    await pubsub.publish(channel, { n: 1 });
    const first = await feed.next();
    expect(first.value).toEqual({ n: 1 });
    feed.close();
    expect((await feed.next()).done).toBe(true);
  });
});
