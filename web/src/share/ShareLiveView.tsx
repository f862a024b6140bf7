import { useId, useRef, useState } from 'react';
import type { Api } from '../api/client';
import { asApiError } from '../api/errors';
import { ConsoleCreateAccessToken } from '../api/operations';
import { sharedBatchUrl } from '../router';

/** How long a shared link works: the API's browser tokens last 60 s to 24 h. */
const LIFETIMES = [
  { seconds: 900, label: '15 minutes' },
  { seconds: 3_600, label: '1 hour' },
  { seconds: 86_400, label: '24 hours' },
] as const;

const time = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/**
 * "Share live view": mints a browser token for this batch (createAccessToken) and shows a
 * read-only link that carries it. Whoever opens the link watches the batch live, without the
 * key, until the token expires; it can change nothing.
 */
export function ShareLiveView({ api, batchId }: { api: Api; batchId: string }) {
  const [ttlSeconds, setTtlSeconds] = useState<number>(LIFETIMES[0].seconds);
  const [shared, setShared] = useState<{ url: string; expiresAt: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [pending, setPending] = useState(false);
  const [copied, setCopied] = useState(false);
  const link = useRef<HTMLInputElement>(null);
  const ids = { lifetime: useId(), link: useId(), help: useId() };

  async function share() {
    setPending(true);
    setError(null);
    setCopied(false);
    try {
      const { createAccessToken } = await api.request(ConsoleCreateAccessToken, { input: { batchId, ttlSeconds } });
      setShared({ url: sharedBatchUrl(createAccessToken.token, batchId), expiresAt: createAccessToken.expiresAt });
      // Ready to copy: focused and selected.
      requestAnimationFrame(() => link.current?.select());
    } catch (caught) {
      setError(asApiError(caught).message);
    } finally {
      setPending(false);
    }
  }

  async function copy() {
    if (!shared) return;
    try {
      await navigator.clipboard.writeText(shared.url);
      setCopied(true);
    } catch {
      link.current?.select(); // no clipboard permission: selected for Ctrl+C
    }
  }

  return (
    <section className="share card" aria-labelledby="share-title">
      <h3 id="share-title">Share live view</h3>
      <div className="share-controls">
        <label htmlFor={ids.lifetime}>Link works for</label>
        <select id={ids.lifetime} value={ttlSeconds} onChange={(e) => setTtlSeconds(Number(e.target.value))}>
          {LIFETIMES.map((l) => (
            <option key={l.seconds} value={l.seconds}>
              {l.label}
            </option>
          ))}
        </select>
        <button type="button" onClick={() => void share()} disabled={pending}>
          {shared ? 'Make a new link' : 'Share live view'}
        </button>
      </div>
      {error && (
        <p className="form-error" role="alert">
          {error}
        </p>
      )}
      {shared && (
        <div className="share-link">
          <label htmlFor={ids.link}>Read-only link</label>
          <div className="share-link-row">
            <input id={ids.link} ref={link} type="url" readOnly value={shared.url} aria-describedby={ids.help} onFocus={(e) => e.target.select()} />
            <button type="button" className="quiet" onClick={() => void copy()}>
              {copied ? 'Copied' : 'Copy'}
            </button>
          </div>
          <p id={ids.help} className="muted" role="status">
            Anyone with this link can watch this batch live until {time.format(new Date(shared.expiresAt))}, without your key. It
            cannot change anything. Revoking the key you signed in with ends it at once.
          </p>
        </div>
      )}
    </section>
  );
}
