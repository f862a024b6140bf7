import type { ConsoleTransitionFragment } from '../../../src/generated/gql/graphql';
import { ClipCheckbox } from '../combine/ClipCheckbox';
import { formatUsd, timeLeft } from '../ui/format';
import { useNow } from '../ui/useNow';
import { ImagePreview } from '../ui/ImagePreview';
import { TRANSITION_STATUS_LABEL, canCancel, canRetry } from './status';

interface Props {
  transition: ConsoleTransitionFragment;
  index: number;
  busy: boolean;
  /** The last cancel or retry of this transition failed with this message. */
  actionError: string | undefined;
  onCancel(): void;
  onRetry(): void;
  /** Present when the clip can be picked for a combined video (COMPLETED, with a video). */
  pick?: { order: number | null; onToggle(): void } | undefined;
  /** Watch only (a shared view): no cancel or retry. */
  readOnly?: boolean;
}

/** One transition of a batch, live: state, fal's queue, attempts, the error, the video. */
export function TransitionCard({ transition: t, index, busy, actionError, onCancel, onRetry, pick, readOnly = false }: Props) {
  const title = `Transition ${index + 1}`;
  const titleId = `transition-${t.id}-title`;
  const waitingAtFal = t.queuePosition !== null && (t.status === 'QUEUED' || t.status === 'SUBMITTED');
  const left = timeLeft(t.estimatedCompletionAt, useNow());
  return (
    <li
      className="transition card"
      data-testid="transition-row"
      data-status={t.status}
      data-id={t.id}
      data-picked={pick?.order != null ? '' : undefined}
      aria-labelledby={titleId}
    >
      <div className="transition-head">
        <h3 id={titleId}>{title}</h3>
        {/* role=status: a screen reader hears each change of state, politely. */}
        <span className={`badge badge-${t.status.toLowerCase()}`} role="status" aria-live="polite">
          <span className="visually-hidden">{title}: </span>
          {TRANSITION_STATUS_LABEL[t.status]}
        </span>
      </div>

      {t.status === 'COMPLETED' && t.videoUrl ? (
        // posterUrl (the first frame) arrives a moment after COMPLETED, in a later update.
        <video className="transition-video" src={t.videoUrl} poster={t.posterUrl ?? undefined} controls playsInline preload="metadata" aria-label={`${title} video`}>
          <a href={t.videoUrl}>Download the video</a>
        </video>
      ) : (
        <div className="transition-images">
          <ImagePreview url={t.frontImageUrl} label="Front image" />
          <span aria-hidden="true">→</span>
          <ImagePreview url={t.tailImageUrl} label="Tail image" />
        </div>
      )}

      <p className="transition-prompt">{t.prompt}</p>
      <dl className="facts">
        <div>
          <dt>Duration</dt>
          <dd>{t.durationSeconds} s</dd>
        </div>
        <div>
          <dt>Type</dt>
          <dd>{t.transitionType}</dd>
        </div>
        <div>
          <dt>Attempts</dt>
          <dd data-testid="attempts">{t.attempts}</dd>
        </div>
        {waitingAtFal && (
          <div>
            <dt>Ahead in fal's queue</dt>
            <dd data-testid="queue-position">{t.queuePosition}</dd>
          </div>
        )}
        {left && (
          <div>
            <dt>Ready in</dt>
            <dd data-testid="transition-eta" title={new Date(t.estimatedCompletionAt!).toLocaleTimeString()}>
              {left}
            </dd>
          </div>
        )}
        <div>
          <dt>Est. cost</dt>
          <dd data-testid="transition-cost">{formatUsd(t.estimatedCost)}</dd>
        </div>
      </dl>

      {t.error && (
        <p className="transition-error" data-testid="transition-error">
          <code>{t.error.code}</code> {t.error.message}
        </p>
      )}
      {actionError && (
        <p className="form-error" role="alert">
          {actionError}
        </p>
      )}

      <div className="transition-actions">
        {pick && <ClipCheckbox title={title} order={pick.order} onToggle={pick.onToggle} />}
        {!readOnly && canCancel(t.status) && (
          <button type="button" onClick={onCancel} disabled={busy} aria-label={`Cancel ${title.toLowerCase()}`}>
            Cancel
          </button>
        )}
        {!readOnly && canRetry(t.status) && (
          <button type="button" onClick={onRetry} disabled={busy} aria-label={`Retry ${title.toLowerCase()}`}>
            Retry
          </button>
        )}
        {t.status === 'COMPLETED' && t.videoUrl && (
          <a className="button-link" href={t.videoUrl} target="_blank" rel="noreferrer">
            Open video<span className="visually-hidden"> of {title.toLowerCase()}</span>
          </a>
        )}
      </div>
    </li>
  );
}
