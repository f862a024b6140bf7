import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { withDeadline } from '../src/providers/deadline.ts';

/** The bound on every call about a request: a timer and a listener that end with the call. */
describe('withDeadline', () => {
  it('aborts the call with a TimeoutError after its time, and with the caller’s reason when the caller aborts first', async () => {
    const timedOut = await withDeadline(50, undefined, (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)))).catch((e: Error) => e);
    expect(timedOut).toMatchObject({ name: 'TimeoutError' });
    const caller = new AbortController();
    setTimeout(() => caller.abort(new Error('caller')), 20);
    const stopped = await withDeadline(10_000, caller.signal, (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)))).catch((e: Error) => e);
    expect(stopped).toMatchObject({ message: 'caller' });
    const already = new AbortController();
    already.abort(new Error('before'));
    expect(await withDeadline(10_000, already.signal, async (signal) => signal.reason as Error)).toMatchObject({ message: 'before' });
  });

  it('lets go of the caller’s signal and of its timer when the call settles', async () => {
    const caller = new AbortController();
    expect(await withDeadline(10_000, caller.signal, async () => 'answer')).toBe('answer');
    await withDeadline(10_000, caller.signal, async () => {
      throw new Error('failed');
    }).catch(() => undefined);
    expect(getEventListeners(caller.signal, 'abort')).toHaveLength(0);
    // Its timer is gone: the call's signal does not fire after the call.
    let inner: AbortSignal | undefined;
    await withDeadline(30, caller.signal, async (signal) => (inner = signal));
    await new Promise((r) => setTimeout(r, 80));
    expect(inner?.aborted).toBe(false);
  });
});
