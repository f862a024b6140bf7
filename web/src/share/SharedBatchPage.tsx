import { useEffect, useMemo } from 'react';
import { createApi } from '../api/client';
import { BatchView } from '../batches/BatchView';

const ignore = () => undefined;

/**
 * A batch opened from a shared link (`/?token=...&batch=...`): the browser token in the link is
 * the only credential, so the page reads and follows that batch and offers no action. No key is
 * asked for, stored or sent.
 */
export function SharedBatchPage({ token, batchId }: { token: string; batchId: string }) {
  const api = useMemo(() => createApi(token), [token]);
  useEffect(() => () => api.close(), [api]);

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="app-header">
        <span className="brand">
          Segue <span>live view</span>
        </span>
        <p className="muted" data-testid="read-only-notice">
          Read only: shared with you through a link that expires.
        </p>
      </header>
      <div className="layout layout-single">
        <main id="main" tabIndex={-1}>
          <BatchView api={api} batchId={batchId} readOnly onBatch={ignore} onCombined={ignore} />
        </main>
      </div>
    </>
  );
}
