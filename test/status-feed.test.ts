import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.ts';
import { createMetrics } from '../src/metrics.ts';
import type { RequestState } from '../src/providers/provider.ts';
import { StatusFeed } from '../src/worker/status-feed.ts';

/**
 * How a status feed ends its stream when the tracker is done: a stream that has answered, for a
 * request fal has ended, is let bring COMPLETED and close (its connection is kept); every other
 * stream is cut at once. Driven by a stream the test feeds, so no timing of a network is involved.
 */
function drivenStreams() {
  const signals: AbortSignal[] = [];
  let next: ((item: RequestState | Error | 'end') => void) | null = null;
  const open = async (signal: AbortSignal, onState: (state: RequestState) => void): Promise<void> => {
    signals.push(signal);
    for (;;) {
      const item = await new Promise<RequestState | Error | 'end'>((resolve) => {
        next = resolve;
        if (signal.aborted) resolve(new Error('cut'));
        signal.addEventListener('abort', () => resolve(new Error('cut')), { once: true });
      });
      if (item === 'end') return;
      if (item instanceof Error) throw item;
      onState(item);
      // As fal's stream (and readStatusStream): nothing comes after COMPLETED but its end.
      if (item.state === 'COMPLETED') return;
    }
  };
  return { open, signals, send: (item: RequestState | Error | 'end') => next?.(item) };
}

const quietLog = createLogger({ log: { level: 'silent', pretty: false } } as never);
const newFeed = (open: (signal: AbortSignal, onState: (state: RequestState) => void) => Promise<void>) => new StatusFeed(open, { metrics: createMetrics(), log: quietLog }).start();
const turn = () => new Promise((r) => setTimeout(r, 20));

/** A feed whose stream has opened and answered with `first`. */
async function answeredFeed(first: RequestState = { state: 'IN_PROGRESS' }) {
  const streams = drivenStreams();
  const feed = newFeed(streams.open);
  await turn();
  streams.send(first);
  await turn();
  return { streams, feed };
}

describe('a status feed closed by its tracker', () => {
  it('cuts a stream that has not answered yet, even for a request fal has ended: it is not let reach fal for nothing', async () => {
    const streams = drivenStreams();
    const feed = newFeed(streams.open);
    await turn();
    expect(streams.signals).toHaveLength(1);
    feed.close(true);
    expect(streams.signals[0]!.aborted).toBe(true);
  });

  it('lets a stream that has answered bring COMPLETED when fal has ended the request, and leaves it uncut', async () => {
    const { streams, feed } = await answeredFeed();
    feed.close(true);
    expect(streams.signals[0]!.aborted).toBe(false);
    streams.send({ state: 'COMPLETED' });
    // Past the finishing time: the stream ended by itself, and nothing cut it afterwards.
    await new Promise((r) => setTimeout(r, 1_300));
    expect(streams.signals[0]!.aborted).toBe(false);
    expect(streams.signals).toHaveLength(1);
  });

  it('cuts a stream that has answered but does not finish, after about a second', async () => {
    const { streams, feed } = await answeredFeed();
    const closedAt = Date.now();
    feed.close(true);
    await new Promise((r) => setTimeout(r, 500));
    expect(streams.signals[0]!.aborted).toBe(false);
    while (!streams.signals[0]!.aborted) await turn();
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(900);
    expect(Date.now() - closedAt).toBeLessThan(2_000);
  });

  it('cuts at once a stream whose request fal has not ended (the job stopping), and stops a feed waiting to reopen a dropped one', async () => {
    const { streams, feed } = await answeredFeed({ state: 'IN_QUEUE', queuePosition: 3 });
    feed.close();
    expect(streams.signals[0]!.aborted).toBe(true);

    const { streams: dropped, feed: reopening } = await answeredFeed();
    // The stream drops: the feed waits (100 ms) to reopen it. Closed then, it neither lingers
    // nor reopens.
    dropped.send(new Error('connection reset'));
    await new Promise((r) => setImmediate(r));
    reopening.close(true);
    expect(dropped.signals[0]!.aborted).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(dropped.signals).toHaveLength(1);
  });

  it('counts its stream open until the stream has been read to its end after COMPLETED, and the tracker takes COMPLETED at once', async () => {
    const metrics = createMetrics();
    const open = metrics.registry.getSingleMetric('segue_fal_status_streams_open')!;
    const gauge = async () => (await open.get()).values[0]?.value ?? 0;
    let finish!: () => void;
    const feed = new StatusFeed(
      (_signal, onState) => {
        onState({ state: 'COMPLETED' });
        // fal's end, still to be read (readStatusStream settles once it is).
        return new Promise<void>((resolve) => (finish = resolve));
      },
      { metrics, log: quietLog },
    ).start();
    await turn();
    expect(feed.take()).toEqual({ state: 'COMPLETED' });
    expect(await gauge()).toBe(1);
    finish();
    await turn();
    expect(await gauge()).toBe(0);
  });
});
