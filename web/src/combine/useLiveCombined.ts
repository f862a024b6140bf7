import { useCallback, useEffect, useState } from 'react';
import type { ConsoleGeneratedTransitionFragment } from '../../../src/generated/gql/graphql';
import type { Api } from '../api/client';
import { resubscribeAfterMs, type ApiError } from '../api/errors';
import { ConsoleGeneratedTransitionUpdated } from '../api/operations';
import type { FeedState } from '../batches/useLiveBatch';

/**
 * One combined video, kept current by `generatedTransitionUpdated(id)`: its state now, then every
 * change, until it is COMPLETED or FAILED (the server then completes the stream). Only a newer
 * `version` replaces what is shown. Key the caller by id: the state starts from `initial`.
 */
export function useLiveCombined(api: Api, initial: ConsoleGeneratedTransitionFragment) {
  const [combined, setCombined] = useState(initial);
  const [feed, setFeed] = useState<FeedState>('connecting');
  const [feedError, setFeedError] = useState<ApiError | null>(null);
  const [epoch, setEpoch] = useState(0);
  const { id } = initial;

  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    setFeed('connecting');
    setFeedError(null);
    const stop = api.subscribe(ConsoleGeneratedTransitionUpdated, { id }, {
      next: ({ generatedTransitionUpdated: update }) => {
        setFeed('live');
        setCombined((shown) => (update.version > shown.version ? update : shown));
      },
      error: (error) => {
        // (An event's own error leaves the stream running: the next event shows it live again.)
        setFeed('interrupted');
        setFeedError(error);
        const after = resubscribeAfterMs(error);
        if (after !== null && timer === undefined) timer = setTimeout(() => setEpoch((n) => n + 1), after);
      },
      complete: () => setFeed('ended'),
    });
    return () => {
      stop();
      clearTimeout(timer);
    };
  }, [api, id, epoch]);

  const resubscribe = useCallback(() => setEpoch((n) => n + 1), []);
  return { combined, feed, feedError, resubscribe };
}
