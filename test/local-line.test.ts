import { describe, expect, it } from 'vitest';
import { LocalLine } from '../src/worker/local-line.ts';

/** A line whose runs end when the test says so; what each run took, and what was handed off. */
function line(options: { limit: number; batch?: number; maxWaiting?: number; beforeWaiting?: (item: string) => Promise<string> }) {
  const runs: string[][] = [];
  const ends: Array<() => void> = [];
  const handedOff: string[] = [];
  const l = new LocalLine<string>({
    limit: options.limit,
    maxWaiting: options.maxWaiting ?? 100,
    ...(options.batch ? { batch: options.batch } : {}),
    ...(options.beforeWaiting ? { beforeWaiting: options.beforeWaiting } : {}),
    keyOf: (item) => item,
    run: (items) => {
      runs.push(items);
      return new Promise<void>((resolve) => ends.push(resolve));
    },
    handOff: async (item) => void handedOff.push(item),
  });
  /** Ends the oldest run still going, and lets the line start what comes next. */
  const endRun = async () => {
    ends.shift()!();
    await new Promise((r) => setImmediate(r));
  };
  return { l, runs, handedOff, endRun, running: () => ends.length };
}

/** A line of one run whose items wait to be readied until `ready()` says so (the latest one offered). */
function lineReadiedOnCue() {
  let readyLatest: (() => void) | null = null;
  const made = line({ limit: 1, beforeWaiting: (item) => new Promise<string>((resolve) => (readyLatest = () => resolve(item))) });
  return { ...made, ready: () => readyLatest!() };
}

describe('LocalLine', () => {
  it('starts an item at once while a run is free, and a backlog in batches, oldest first', async () => {
    const { l, runs, endRun, running } = line({ limit: 2, batch: 3 });
    await l.offer('a');
    await l.offer('b');
    for (const item of ['c', 'd', 'e', 'f', 'g', 'c']) await l.offer(item);
    // Two runs at once, each of one item; the rest waits (c only once).
    expect(runs).toEqual([['a'], ['b']]);
    expect(l.size).toBe(7);
    await endRun();
    expect(runs.at(-1)).toEqual(['c', 'd', 'e']);
    expect(running()).toBe(2);
    await endRun();
    expect(runs.at(-1)).toEqual(['f', 'g']);
    await endRun();
    await endRun();
    expect(running()).toBe(0);
    expect(l.size).toBe(0);
    // Idle again: the next item runs alone, at once.
    await l.offer('h');
    expect(runs.at(-1)).toEqual(['h']);
  });

  it('runs one item at a time without a batch, and hands off past the line and on close', async () => {
    const { l, runs, handedOff, endRun } = line({ limit: 1, maxWaiting: 2 });
    for (const item of ['a', 'b', 'c', 'd']) await l.offer(item);
    expect(handedOff).toEqual(['d']);
    await endRun();
    expect(runs).toEqual([['a'], ['b']]);
    const closed = l.close(10);
    await closed;
    // c waited and b was still running after the grace: both go to the queue.
    expect(handedOff.sort()).toEqual(['b', 'c', 'd']);
  });

  it('counts runs, not items, against its limit', async () => {
    const { l, runs, endRun, running } = line({ limit: 2, batch: 3 });
    await l.offer('a');
    await l.offer('b');
    for (const item of ['c', 'd', 'e']) await l.offer(item);
    await endRun();
    // One run of three items and one of one: a second run is still free for nothing more.
    expect(runs.at(-1)).toEqual(['c', 'd', 'e']);
    await endRun();
    expect(running()).toBe(1);
    await l.offer('f');
    expect(runs.at(-1)).toEqual(['f']);
    expect(running()).toBe(2);
  });

  it('hands off every item of a batch still running after the grace on close', async () => {
    const { l, runs, handedOff, endRun } = line({ limit: 1, batch: 3 });
    for (const item of ['a', 'b', 'c', 'd', 'e']) await l.offer(item);
    await endRun();
    expect(runs.at(-1)).toEqual(['b', 'c', 'd']);
    await l.close(10);
    expect(handedOff.sort()).toEqual(['b', 'c', 'd', 'e']);
  });

  it('places again an item readied for waiting while the line moved on', async () => {
    const { l, runs, handedOff, endRun, ready } = lineReadiedOnCue();
    await l.offer('a');
    const b = l.offer('b');
    // Offered again while it is being readied: taken once.
    await l.offer('b');
    // The only run ends while b is readied: b starts when it is ready, rather than wait for
    // another offer.
    await endRun();
    ready();
    await b;
    expect(runs).toEqual([['a'], ['b']]);
    // Readied while the line closes: handed off, not left waiting.
    const c = l.offer('c');
    const closed = l.close(10);
    ready();
    await c;
    await closed;
    expect(handedOff.sort()).toEqual(['b', 'c']);
  });

  it('waits on close, within the grace, for an item still being readied, and hands it off before close resolves', async () => {
    const { l, runs, handedOff, endRun, ready } = lineReadiedOnCue();
    await l.offer('a');
    void l.offer('b');
    // Nothing runs or waits while b is readied: close has only b to wait for.
    await endRun();
    let closed = false;
    const closing = l.close(5_000).then(() => (closed = true));
    // A moment for a close that does not wait to resolve: nothing else can make it resolve now.
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(false);
    ready();
    await closing;
    expect(handedOff).toEqual(['b']);
    expect(runs).toEqual([['a']]);
  });

  it('does not wait on close past the grace for an item that is never readied', async () => {
    const { l, handedOff } = line({ limit: 1, beforeWaiting: () => new Promise<string>(() => undefined) });
    await l.offer('a');
    void l.offer('b');
    const started = Date.now();
    await l.close(100);
    expect(Date.now() - started).toBeLessThan(1_000);
    // a still ran after the grace: handed off. b, never readied, holds up nothing.
    expect(handedOff).toEqual(['a']);
  });

  it('hands off an item that could not be readied to wait', async () => {
    const { l, runs, handedOff } = line({ limit: 1, beforeWaiting: async () => Promise.reject(new Error('cannot let go of its file')) });
    await l.offer('a');
    await l.offer('b');
    expect(runs).toEqual([['a']]);
    expect(handedOff).toEqual(['b']);
    expect(l.size).toBe(1);
  });
});
