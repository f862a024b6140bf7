import { useCallback, useRef, useState } from 'react';
import type { CombineTransitionsInput, ConsoleGeneratedTransitionFragment } from '../../../src/generated/gql/graphql';
import type { Api } from '../api/client';
import { asApiError } from '../api/errors';
import { ConsoleCombineTransitions } from '../api/operations';
import { combineErrorsFrom, noCombineErrors, type CombineErrors } from './combine-errors';

/**
 * Sends combineTransitions once at a time (a double click makes one video: the mutation has no
 * idempotency key). Resolves with the errors shown, so the form can move focus to the first.
 */
export function useCombineRequest(api: Api, onCombined: (combined: ConsoleGeneratedTransitionFragment) => void) {
  const [pending, setPending] = useState(false);
  const [errors, setErrors] = useState<CombineErrors>(noCombineErrors);
  const inFlight = useRef(false);

  const combine = useCallback(
    async (input: CombineTransitionsInput): Promise<CombineErrors> => {
      if (inFlight.current) return noCombineErrors;
      inFlight.current = true;
      setPending(true);
      let shown = noCombineErrors;
      try {
        const { combineTransitions } = await api.request(ConsoleCombineTransitions, { input });
        onCombined(combineTransitions.generatedTransition);
      } catch (caught) {
        shown = combineErrorsFrom(asApiError(caught));
      } finally {
        inFlight.current = false;
        setPending(false);
      }
      setErrors(shown);
      return shown;
    },
    [api, onCombined],
  );

  const clearAudioError = useCallback(() => setErrors((e) => (e.audioUrl ? { ...e, audioUrl: null } : e)), []);

  return { pending, errors, combine, clearAudioError };
}
