import { useCallback } from 'react';
import type { ConsoleBatchFragment } from '../../../src/generated/gql/graphql';
import type { Api } from '../api/client';
import { usePages } from '../api/usePages';
import { ConsoleRecentBatches } from '../api/operations';
import { batchHref, useNavigateOnClick } from '../router';
import { BATCH_STATUS_LABEL } from './status';

interface Props {
  api: Api;
  openBatchId: string | null;
  /** The open batch's live state, fresher than what the list loaded. */
  openBatch: ConsoleBatchFragment | null;
}

const time = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'short' });

/** The account's batches, newest first, ten at a time, as links. Reloaded whenever another batch opens. */
export function RecentBatches({ api, openBatchId, openBatch }: Props) {
  const fetchPage = useCallback(async (after: string | null) => (await api.request(ConsoleRecentBatches, { after })).batches, [api]);
  const { items: batches, error, more } = usePages(fetchPage, openBatchId);
  const onClick = useNavigateOnClick();

  const shown = batches.map((b) => (openBatch && b.id === openBatch.id ? openBatch : b));
  return (
    <nav className="recent card" aria-labelledby="recent-title">
      <h2 id="recent-title">Recent batches</h2>
      {error && (
        <p className="form-error" role="alert">
          {error}
        </p>
      )}
      {shown.length === 0 && !error && <p className="muted">None yet.</p>}
      <ul>
        {shown.map((b) => (
          <li key={b.id}>
            <a href={batchHref(b.id)} onClick={onClick} aria-current={b.id === openBatchId ? 'page' : undefined}>
              <span className="recent-title">
                {b.total} transition{b.total === 1 ? '' : 's'} · {time.format(new Date(b.createdAt))}
              </span>
              <span className={`badge badge-${b.status.toLowerCase()}`}>{BATCH_STATUS_LABEL[b.status]}</span>
              <span className="muted recent-counts">
                {b.completed}/{b.total} done
              </span>
            </a>
          </li>
        ))}
      </ul>
      {more && (
        <button type="button" className="quiet" onClick={more}>
          Show older batches
        </button>
      )}
    </nav>
  );
}
