import { useCallback, useSyncExternalStore, type MouseEvent } from 'react';

/*
 * Places, kept in the query string so that any static host serves them: `/` (new batch),
 * `/?batch=<id>` (a batch), and `/?token=<token>&batch=<id>`, a batch shared read-only (the token
 * is a browser token for that batch, never a key). Real links, so they open in a new tab and
 * work from the keyboard.
 */

const NAVIGATED = 'segue:navigate';

function subscribe(onChange: () => void) {
  window.addEventListener('popstate', onChange);
  window.addEventListener(NAVIGATED, onChange);
  return () => {
    window.removeEventListener('popstate', onChange);
    window.removeEventListener(NAVIGATED, onChange);
  };
}

const currentBatchId = () => new URLSearchParams(window.location.search).get('batch');

export const batchHref = (batchId: string | null) => (batchId ? `/?batch=${encodeURIComponent(batchId)}` : '/');

/** The absolute read-only link to a batch for whoever holds `token`. */
export const sharedBatchUrl = (token: string, batchId: string) =>
  `${window.location.origin}/?token=${encodeURIComponent(token)}&batch=${encodeURIComponent(batchId)}`;

/** A shared link's token and batch, when this page is one. */
export function sharedLink(): { token: string; batchId: string } | null {
  const params = new URLSearchParams(window.location.search);
  const token = params.get('token');
  const batchId = params.get('batch');
  return token && batchId ? { token, batchId } : null;
}

export function navigate(href: string) {
  window.history.pushState(null, '', href);
  window.dispatchEvent(new Event(NAVIGATED));
}

/** The open batch's id, or null on the new-batch page. */
export function useBatchRoute(): string | null {
  return useSyncExternalStore(subscribe, currentBatchId);
}

/** onClick for an <a href>: navigate in place unless the user asked for a new tab or window. */
export function useNavigateOnClick() {
  return useCallback((event: MouseEvent<HTMLAnchorElement>) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(event.currentTarget.getAttribute('href') ?? '/');
  }, []);
}
