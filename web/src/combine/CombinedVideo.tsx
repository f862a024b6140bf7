import { useEffect, useId } from 'react';
import type { ConsoleGeneratedTransitionFragment } from '../../../src/generated/gql/graphql';
import type { Api } from '../api/client';
import { formatSeconds } from '../ui/format';
import { COMBINED_STATUS_LABEL } from './status';
import { useLiveCombined } from './useLiveCombined';

interface Props {
  api: Api;
  /** As the mutation returned it; key the component by its id. */
  initial: ConsoleGeneratedTransitionFragment;
  /** The number shown for each clip id ("Transition 2"), when it belongs to the open batch. */
  titleOf(transitionId: string): string;
  /** Every newer state, for the list of combined videos. */
  onUpdate(combined: ConsoleGeneratedTransitionFragment): void;
}

const PENDING_NOTE = {
  QUEUED: 'Waiting for a media worker…',
  RUNNING: 'Joining the clips…',
} as const;

/** Where the subtitles are: known once COMPLETED (clips without subtitles make none). */
function subtitlesNote(g: ConsoleGeneratedTransitionFragment): string {
  if (g.status !== 'COMPLETED') return g.burnSubtitles ? 'To burn in' : 'As a track';
  if (!g.subtitlesUrl) return 'None';
  return g.burnSubtitles ? 'Burnt in, and a track' : 'Track';
}

/** A combined video, live: its state while it renders, then the video with poster and subtitles. */
export function CombinedVideo({ api, initial, titleOf, onUpdate }: Props) {
  const { combined: g, feed, feedError, resubscribe } = useLiveCombined(api, initial);
  const titleId = useId();

  useEffect(() => {
    onUpdate(g);
  }, [g, onUpdate]);

  const clips = g.transitions.map((t) => titleOf(t.id)).join(', then ');
  return (
    <section className="combined card" aria-labelledby={titleId} data-testid="combined-video" data-status={g.status} data-id={g.id}>
      <div className="transition-head">
        <h3 id={titleId}>Combined video</h3>
        <span className={`badge badge-${g.status.toLowerCase()}`} role="status" aria-live="polite">
          <span className="visually-hidden">Combined video: </span>
          {COMBINED_STATUS_LABEL[g.status]}
        </span>
      </div>

      {g.status === 'COMPLETED' && g.videoUrl ? (
        <video className="transition-video" src={g.videoUrl} poster={g.posterUrl ?? undefined} controls playsInline preload="metadata" aria-label="Combined video">
          {/* Burnt-in subtitles are already in the picture: the track is there, but not shown twice. */}
          {g.subtitlesUrl && <track kind="subtitles" src={g.subtitlesUrl} srcLang="en" label="Subtitles" default={!g.burnSubtitles} />}
          <a href={g.videoUrl}>Download the combined video</a>
        </video>
      ) : g.status !== 'FAILED' ? (
        <p className="combined-pending" aria-hidden="true">
          {PENDING_NOTE[g.status === 'COMPLETED' ? 'RUNNING' : g.status]}
        </p>
      ) : null}

      <p className="transition-prompt">{clips}</p>
      <dl className="facts">
        <div>
          <dt>Clips</dt>
          <dd>{g.transitions.length}</dd>
        </div>
        {g.durationSeconds !== null && (
          <div>
            <dt>Duration</dt>
            <dd data-testid="combined-duration">{formatSeconds(g.durationSeconds)}</dd>
          </div>
        )}
        <div>
          <dt>Audio</dt>
          <dd>{g.audioUrl ? 'Added' : 'None'}</dd>
        </div>
        <div>
          <dt>Subtitles</dt>
          <dd>{subtitlesNote(g)}</dd>
        </div>
      </dl>

      {g.error && (
        <p className="form-error" role="alert" data-testid="combined-error">
          The combined video failed: <code>{g.error.code}</code> {g.error.message}
        </p>
      )}
      {feed === 'interrupted' && (
        <p className="form-error" role="alert">
          Live updates stopped{feedError ? `: ${feedError.message}` : '.'}{' '}
          <button type="button" className="quiet" onClick={resubscribe}>
            Reconnect
          </button>
        </p>
      )}

      {g.status === 'COMPLETED' && g.videoUrl && (
        <div className="transition-actions">
          <a className="button-link" href={g.videoUrl} target="_blank" rel="noreferrer">
            Open combined video
          </a>
          {g.subtitlesUrl && (
            <a className="button-link" href={g.subtitlesUrl} target="_blank" rel="noreferrer">
              Subtitles (WebVTT)
            </a>
          )}
        </div>
      )}
    </section>
  );
}
