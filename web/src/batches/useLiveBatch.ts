import { useCallback, useEffect, useReducer, useRef, useState } from 'react';
import type { Api } from '../api/client';
import { asApiError, resubscribeAfterMs, type ApiError } from '../api/errors';
import { ConsoleBatchItemIds, ConsoleBatchProgress, ConsoleTransitionUpdated } from '../api/operations';
import { loadBatch } from './load-batch';
import { emptyLiveBatch, liveBatchReducer } from './live-state';

/**
 * connecting: subscribed, nothing heard yet; live: events arriving; ended: the server completed
 * both streams (it does when the batch ends); interrupted: an error stopped them; deleted: the
 * batch was deleted (its transitions deleted through the API) while shown.
 */
export type FeedState = 'connecting' | 'live' | 'ended' | 'interrupted' | 'deleted';

/**
 * One batch, kept current: the batch query, then `transitionUpdated(batchId)` and
 * `batchProgress(id)` over one WebSocket. Subscribing after the query answered means the
 * snapshot each stream starts with covers whatever changed in between.
 */
export function useLiveBatch(api: Api, batchId: string) {
  const [state, dispatch] = useReducer(liveBatchReducer, emptyLiveBatch);
  const [loadError, setLoadError] = useState<ApiError | null>(null);
  const [feed, setFeed] = useState<FeedState>('connecting');
  const [feedError, setFeedError] = useState<ApiError | null>(null);
  const [epoch, setEpoch] = useState(0);
  const loaded = state.batch?.id === batchId;
  // Read by the stream handlers, which outlive the render that made them.
  const shown = useRef({ rows: 0, ended: false });
  shown.current = { rows: state.order.length, ended: Boolean(state.batch?.completedAt) };

  useEffect(() => {
    let current = true;
    dispatch({ type: 'reset' });
    setLoadError(null);
    loadBatch(api, batchId).then(
      ({ batch, transitions }) => current && dispatch({ type: 'loaded', batch, transitions }),
      (error: unknown) => current && setLoadError(asApiError(error)),
    );
    return () => {
      current = false;
    };
  }, [api, batchId]);

  useEffect(() => {
    if (!loaded) return;
    let open = 2;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stops: Array<() => void> = [];
    const stopAll = () => {
      for (const stop of stops.splice(0)) stop();
    };
    setFeed('connecting');
    setFeedError(null);
    const heard = () => setFeed('live');
    // Transitions were deleted (through the API): which the batch still holds is read again.
    // One read at a time, each applied in turn, so an older answer never lands after a newer one;
    // triggers while one runs make one more, after it.
    let reads: Promise<'found' | 'deleted' | 'failed'> = Promise.resolve('found');
    let queued = false;
    const reload = () => {
      if (queued) return reads;
      queued = true;
      reads = reads.then(async () => {
        queued = false;
        try {
          const { batch } = await api.request(ConsoleBatchItemIds, { id: batchId });
          dispatch({ type: 'kept', ids: batch.transitions.edges.map((e) => e.node.id) });
          return 'found';
        } catch (error) {
          return asApiError(error).code === 'NOT_FOUND' ? 'deleted' : 'failed';
        }
      });
      return reads;
    };
    const completed = () => {
      open -= 1;
      if (open > 0) return;
      // Streams complete when their batch ends, or with no end when it is deleted: without the
      // end in hand, the batch is read to tell which.
      if (shown.current.ended) setFeed('ended');
      else void reload().then((read) => setFeed(read === 'deleted' ? 'deleted' : 'ended'));
    };
    const failed = (error: ApiError) => {
      stopAll();
      setFeed('interrupted');
      setFeedError(error);
      const after = resubscribeAfterMs(error);
      if (after !== null && timer === undefined) timer = setTimeout(() => setEpoch((n) => n + 1), after);
    };
    stops.push(
      api.subscribe(ConsoleTransitionUpdated, { batchId }, {
        next: ({ transitionUpdated }) => {
          heard();
          dispatch({ type: 'transition', transition: transitionUpdated });
        },
        error: failed,
        complete: completed,
      }),
      api.subscribe(ConsoleBatchProgress, { id: batchId }, {
        next: ({ batchProgress }) => {
          heard();
          dispatch({ type: 'batch', batch: batchProgress });
          // Known now, not at the next render: the completion may come before it.
          shown.current = { ...shown.current, ended: Boolean(batchProgress.completedAt) };
          if (batchProgress.total < shown.current.rows) void reload();
        },
        error: failed,
        complete: completed,
      }),
    );
    return () => {
      stopAll();
      clearTimeout(timer);
    };
  }, [api, batchId, loaded, epoch]);

  /**
   * Subscribe again (a fresh snapshot first): after a retry, which reopens a batch whose streams
   * may have completed, or when the user asks after an interruption.
   */
  const resubscribe = useCallback(() => setEpoch((n) => n + 1), []);

  return { state, dispatch, loadError, feed, feedError, resubscribe };
}
