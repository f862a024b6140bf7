import { useEffect, useMemo } from 'react';
import type { ConsoleBatchFragment, ConsoleGeneratedTransitionFragment } from '../../../src/generated/gql/graphql';
import type { Api } from '../api/client';
import { CombineSection } from '../combine/CombineSection';
import { useClipPicking } from '../combine/useClipPicking';
import { ShareLiveView } from '../share/ShareLiveView';
import { formatUsd, timeLeft } from '../ui/format';
import { useNow } from '../ui/useNow';
import { ProgressBar } from './ProgressBar';
import { BATCH_STATUS_LABEL, batchIsOpen } from './status';
import { TransitionCard } from './TransitionCard';
import { BATCH_ACTION, useBatchActions } from './useBatchActions';
import { useLiveBatch, type FeedState } from './useLiveBatch';

interface Props {
  api: Api;
  batchId: string;
  /** Tells the page the batch's latest state (the recent-batches list shows it too). */
  onBatch(batch: ConsoleBatchFragment): void;
  /** Tells the page the latest state of a combined video made here (the list shows it too). */
  onCombined(combined: ConsoleGeneratedTransitionFragment): void;
  /** A shared view (browser token): watch only, no cancel, retry, combine or share. */
  readOnly?: boolean;
}

const FEED_LABEL: Record<FeedState, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  ended: 'Ended',
  interrupted: 'Updates stopped',
  deleted: 'Deleted',
};

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/**
 * A batch as it runs: progress, the API's estimated cost, each transition with its controls, and
 * combining completed clips into one video (a checkbox per completed card, the form above them).
 */
export function BatchView({ api, batchId, onBatch, onCombined, readOnly = false }: Props) {
  const live = useLiveBatch(api, batchId);
  const actions = useBatchActions(api, batchId, live.dispatch, live.resubscribe);
  const { batch, order, transitions } = live.state;
  const rows = useMemo(() => order.flatMap((id) => transitions[id] ?? []), [order, transitions]);
  const picking = useClipPicking(rows);
  const now = useNow();

  useEffect(() => {
    if (batch) onBatch(batch);
  }, [batch, onBatch]);

  if (live.loadError || live.feed === 'deleted') {
    return (
      <section aria-labelledby="batch-title">
        <h2 id="batch-title" tabIndex={-1}>
          Batch
        </h2>
        <p className="form-error" role="alert">
          {!live.loadError
            ? 'This batch was deleted while you watched it: its transitions were deleted.'
            : live.loadError.code === 'NOT_FOUND'
            ? 'There is no such batch in this account.'
            : live.loadError.code === 'UNAUTHENTICATED' && readOnly
              ? 'This link has expired or was withdrawn. Ask for a new one.'
              : live.loadError.message}
        </p>
      </section>
    );
  }
  if (!batch) {
    return (
      <section aria-labelledby="batch-title" aria-busy="true">
        <h2 id="batch-title" tabIndex={-1}>
          Batch
        </h2>
        <p>Loading…</p>
      </section>
    );
  }

  const left = timeLeft(batch.estimatedCompletionAt, now);
  return (
    <section aria-labelledby="batch-title" className="batch" data-testid="batch-view" data-batch-status={batch.status}>
      <header className="batch-head">
        <div>
          <h2 id="batch-title" tabIndex={-1}>
            Batch of {batch.total}
          </h2>
          <p className="muted">Created {dateTime.format(new Date(batch.createdAt))}</p>
        </div>
        <p className="batch-status" aria-live="polite">
          <span className={`badge badge-${batch.status.toLowerCase()}`}>{BATCH_STATUS_LABEL[batch.status]}</span>
        </p>
        <p className={`feed feed-${live.feed}`} title={live.feedError?.message}>
          <span className="feed-dot" aria-hidden="true" /> {FEED_LABEL[live.feed]}
          {live.feed === 'interrupted' && (
            <button type="button" className="quiet" onClick={live.resubscribe}>
              Reconnect
            </button>
          )}
        </p>
      </header>
      {live.feedError && live.feed === 'interrupted' && (
        <p className="form-error" role="alert">
          {readOnly && live.feedError.code === 'UNAUTHENTICATED'
            ? 'This link has expired or was withdrawn: live updates stopped. Ask for a new one.'
            : `Live updates stopped: ${live.feedError.message}`}
        </p>
      )}

      <ProgressBar counts={batch} />
      <div className="batch-summary">
        {left && (
          <p data-testid="batch-eta" title={new Date(batch.estimatedCompletionAt!).toLocaleTimeString()}>
            Done in <strong>{left}</strong>
          </p>
        )}
        <p>
          Estimated cost: <strong data-testid="batch-cost">{formatUsd(batch.estimatedCost)}</strong>{' '}
          <span className="muted">(the API's estimate at the model's published price, each video generated once)</span>
        </p>
        {!readOnly && batchIsOpen(batch.status) && (
          <button type="button" className="danger" onClick={actions.cancelBatch} disabled={actions.busy.has(BATCH_ACTION)}>
            Cancel batch
          </button>
        )}
      </div>
      {actions.errors[BATCH_ACTION] && (
        <p className="form-error" role="alert">
          {actions.errors[BATCH_ACTION]}
        </p>
      )}

      {!readOnly && <ShareLiveView api={api} batchId={batchId} />}
      {!readOnly && <CombineSection api={api} picking={picking} onCombined={onCombined} />}

      <ol className="transitions">
        {rows.map((transition, index) => (
          <TransitionCard
            key={transition.id}
            transition={transition}
            index={index}
            busy={actions.busy.has(transition.id)}
            actionError={actions.errors[transition.id]}
            onCancel={() => void actions.cancel(transition.id)}
            onRetry={() => void actions.retry(transition.id)}
            pick={readOnly ? undefined : picking.pickOf(transition.id)}
            readOnly={readOnly}
          />
        ))}
      </ol>
    </section>
  );
}
