import { useCallback } from 'react';
import type { ConsoleGeneratedTransitionFragment } from '../../../src/generated/gql/graphql';
import type { Api } from '../api/client';
import { usePages } from '../api/usePages';
import { ConsoleGeneratedTransitions } from '../api/operations';
import { formatSeconds } from '../ui/format';
import { COMBINED_STATUS_LABEL } from './status';

interface Props {
  api: Api;
  /** The combined video the open batch is following, fresher than what the list loaded. */
  latest: ConsoleGeneratedTransitionFragment | null;
}

const time = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'short' });

/** The account's combined videos, newest first, ten at a time; a finished one links to its file. */
export function CombinedVideos({ api, latest }: Props) {
  const fetchPage = useCallback(
    async (after: string | null) => (await api.request(ConsoleGeneratedTransitions, { after })).generatedTransitions,
    [api],
  );
  const { items, error, more } = usePages(fetchPage);

  const merged = latest && !items.some((g) => g.id === latest.id) ? [latest, ...items] : items;
  const shown = merged.map((g) => (latest && g.id === latest.id && latest.version >= g.version ? latest : g));
  return (
    <section className="combined-list card" aria-labelledby="combined-list-title" data-testid="combined-list">
      <h2 id="combined-list-title">Combined videos</h2>
      {error && (
        <p className="form-error" role="alert">
          {error}
        </p>
      )}
      {shown.length === 0 && !error && <p className="muted">None yet: pick completed clips in a batch to combine them.</p>}
      <ul>
        {shown.map((g) => {
          const label = `${g.transitions.length} clips · ${time.format(new Date(g.createdAt))}`;
          return (
            <li key={g.id} data-status={g.status}>
              {g.status === 'COMPLETED' && g.videoUrl ? (
                <a className="combined-list-title" href={g.videoUrl} target="_blank" rel="noreferrer">
                  <span className="visually-hidden">Open the combined video of </span>
                  {label}
                </a>
              ) : (
                <span className="combined-list-title">{label}</span>
              )}
              <span className={`badge badge-${g.status.toLowerCase()}`}>{COMBINED_STATUS_LABEL[g.status]}</span>
              <span className="muted combined-list-detail">
                {g.durationSeconds !== null ? formatSeconds(g.durationSeconds) : g.error ? g.error.code : 'Not rendered yet'}
              </span>
            </li>
          );
        })}
      </ul>
      {more && (
        <button type="button" className="quiet" onClick={more}>
          Show older combined videos
        </button>
      )}
    </section>
  );
}
