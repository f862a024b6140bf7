/**
 * Runs `call` with a signal that aborts when `ms` have passed (with a TimeoutError, as
 * AbortSignal.timeout's does) or when `signal` aborts, and lets go of both once the call settles.
 *
 * Why not `AbortSignal.any([signal, AbortSignal.timeout(ms)])`: on Node 20 what that builds
 * outlives the call. The timeout's timer stays for the whole of `ms`; the joined signal is held
 * (a fetch listens on it) until a major GC has run the fetch's finalizers; and the caller's signal,
 * a job's that lives for minutes, gains an entry per call. A worker polls each request it follows
 * every few seconds, so all of that reached the old generation and its memory rose and fell by
 * tens of MB between major GCs. Here everything a call makes dies young, with the call.
 */
export async function withDeadline<T>(ms: number, signal: AbortSignal | undefined, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException(`The operation timed out after ${ms} ms.`, 'TimeoutError')), ms);
  timer.unref();
  const follow = () => controller.abort(signal?.reason);
  if (signal?.aborted) controller.abort(signal.reason);
  else signal?.addEventListener('abort', follow, { once: true });
  try {
    return await call(controller.signal);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', follow);
  }
}
