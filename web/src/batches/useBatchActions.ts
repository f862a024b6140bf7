import { useCallback, useState, type Dispatch } from 'react';
import type { Api } from '../api/client';
import { asApiError } from '../api/errors';
import { ConsoleCancelBatch, ConsoleCancelTransition, ConsoleRetryTransition } from '../api/operations';
import type { LiveBatchAction } from './live-state';

/** The key under which the whole batch's action is tracked (transitions use their ids). */
export const BATCH_ACTION = 'batch';

/**
 * Cancel and retry, per transition and for the batch. Each mutation answers with the new state,
 * applied at once; the subscriptions confirm it (an equal version is ignored).
 */
export function useBatchActions(api: Api, batchId: string, dispatch: Dispatch<LiveBatchAction>, reopened: () => void) {
  const [busy, setBusy] = useState<ReadonlySet<string>>(new Set());
  const [errors, setErrors] = useState<Readonly<Record<string, string>>>({});

  const run = useCallback(async (key: string, action: () => Promise<void>) => {
    setBusy((s) => new Set(s).add(key));
    setErrors(({ [key]: _, ...rest }) => rest);
    try {
      await action();
    } catch (error) {
      setErrors((e) => ({ ...e, [key]: asApiError(error).message }));
    } finally {
      setBusy((s) => {
        const next = new Set(s);
        next.delete(key);
        return next;
      });
    }
  }, []);

  const cancel = (id: string) =>
    run(id, async () => {
      const { cancelTransition } = await api.request(ConsoleCancelTransition, { id });
      dispatch({ type: 'transition', transition: cancelTransition });
    });

  const retry = (id: string) =>
    run(id, async () => {
      const { retryTransition } = await api.request(ConsoleRetryTransition, { id });
      dispatch({ type: 'transition', transition: retryTransition });
      // The batch runs again: if its streams had completed, open them again.
      reopened();
    });

  const cancelBatch = () =>
    run(BATCH_ACTION, async () => {
      const { cancelBatch } = await api.request(ConsoleCancelBatch, { id: batchId });
      dispatch({ type: 'batch', batch: cancelBatch });
    });

  return { busy, errors, cancel, retry, cancelBatch };
}
