/**
 * `promise`'s outcome, or a rejection once `ms` have passed: for a call to Redis or PostgreSQL
 * that a request must not wait on longer. The call itself goes on; a late failure of it is nobody's.
 */
export function within<T>(promise: Promise<T>, ms: number, what = 'no answer'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  promise.catch(() => undefined);
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
