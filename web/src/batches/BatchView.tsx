import { useEffect } from 'react';
import type { ConsoleBatchFragment } from '../../../src/generated/gql/graphql';
import type { Api } from '../api/client';
import { estimateBatchCostUsd, formatUsd } from '../cost';
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
}

const FEED_LABEL: Record<FeedState, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  ended: 'Ended',
  interrupted: 'Updates stopped',
};

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/**
 * A batch as it runs: progress, estimated cost, and each transition with its controls.
 * (Combining selected clips into one video belongs here too, once the API has the mutation:
 * a checkbox per completed card and a "Combine" action beside "Cancel batch".)
 */
export function BatchView({ api, batchId, onBatch }: Props) {
  const live = useLiveBatch(api, batchId);
  const actions = useBatchActions(api, batchId, live.dispatch, live.resubscribe);
  const { batch, order, transitions } = live.state;

  useEffect(() => {
    if (batch) onBatch(batch);
  }, [batch, onBatch]);

  if (live.loadError) {
    return (
      <section aria-labelledby="batch-title">
        <h2 id="batch-title" tabIndex={-1}>
          Batch
        </h2>
        <p className="form-error" role="alert">
          {live.loadError.code === 'NOT_FOUND' ? 'There is no such batch in this account.' : live.loadError.message}
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

  const rows = order.flatMap((id) => transitions[id] ?? []);
  const cost = estimateBatchCostUsd(rows.map((t) => t.durationSeconds));
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
          Live updates stopped: {live.feedError.message}
        </p>
      )}

      <ProgressBar counts={batch} />
      <div className="batch-summary">
        <p>
          Estimated cost: <strong data-testid="batch-cost">{formatUsd(cost)}</strong>{' '}
          <span className="muted">(Kling v2.1 Pro list price, each video generated once)</span>
        </p>
        {batchIsOpen(batch.status) && (
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
          />
        ))}
      </ol>
    </section>
  );
}
