/**
 * One lookup per key in flight, shared by every caller that asks for the same key meanwhile;
 * nothing is kept once it settles. After an API restart thousands of browsers present the same
 * few credentials at once: each distinct one is then read once per round trip, not once per
 * connection. A caller may get an answer read up to one round trip before it asked, never older
 * (as if it had asked a moment sooner); a revocation still reaches its open connections through
 * the session checks (src/auth/sessions.ts).
 */
export class SharedLookups<V> {
  private readonly inFlight = new Map<string, Promise<V>>();

  run(key: string, lookup: () => Promise<V>): Promise<V> {
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const started = lookup().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, started);
    return started;
  }

  /** Lookups in flight now. */
  get size() {
    return this.inFlight.size;
  }
}
