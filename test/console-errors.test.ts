import { describe, expect, it } from 'vitest';
import { apiErrorFrom, networkError, resubscribeAfterMs } from '../web/src/api/errors.ts';

/** The console's reading of the API's errors (web/src/api/errors.ts), as its live views use it. */
describe('the console after a live stream ends with an error', () => {
  it('subscribes again after LIMIT_EXCEEDED in a second, after UNAVAILABLE in the retryAfter the API gave, and not after anything else', () => {
    const limit = apiErrorFrom([{ message: 'fell behind', extensions: { code: 'LIMIT_EXCEEDED' } }]);
    expect(resubscribeAfterMs(limit)).toBe(1_000);
    // As the API refuses a stream with its heap near the limit (src/http/websocket.ts).
    const full = apiErrorFrom([{ message: 'no room', extensions: { code: 'UNAVAILABLE', retryAfter: 10 } }]);
    expect(full.retryAfterMs).toBe(10_000);
    expect(resubscribeAfterMs(full)).toBe(10_000);
    // A database that does not answer says no retryAfter: the same wait.
    expect(resubscribeAfterMs(apiErrorFrom([{ message: 'down', extensions: { code: 'UNAVAILABLE' } }]))).toBe(10_000);
    // Within reason, whatever the API says.
    expect(resubscribeAfterMs(apiErrorFrom([{ message: 'now', extensions: { code: 'UNAVAILABLE', retryAfter: 0 } }]))).toBe(1_000);
    expect(resubscribeAfterMs(apiErrorFrom([{ message: 'later', extensions: { code: 'UNAVAILABLE', retryAfter: 86_400 } }]))).toBe(300_000);
    for (const code of ['FORBIDDEN', 'NOT_FOUND', 'UNAUTHENTICATED', 'INTERNAL']) {
      expect(resubscribeAfterMs(apiErrorFrom([{ message: code, extensions: { code } }]))).toBeNull();
    }
    expect(resubscribeAfterMs(networkError())).toBeNull();
  });
});
