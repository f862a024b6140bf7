import { useCallback, useState } from 'react';
import type { ConsoleGeneratedTransitionFragment } from '../../../src/generated/gql/graphql';
import type { Api } from '../api/client';
import { CombinedVideo } from './CombinedVideo';
import { CombinePanel } from './CombinePanel';
import type { ClipPicking } from './useClipPicking';

interface Props {
  api: Api;
  picking: ClipPicking;
  /** Every state of a combined video made here, for the page's list of them. */
  onCombined(combined: ConsoleGeneratedTransitionFragment): void;
}

/** The batch's combine form, and the last combined video made from it, live. */
export function CombineSection({ api, picking, onCombined }: Props) {
  const [made, setMade] = useState<ConsoleGeneratedTransitionFragment | null>(null);
  const started = useCallback(
    (combined: ConsoleGeneratedTransitionFragment) => {
      setMade(combined);
      onCombined(combined);
    },
    [onCombined],
  );

  if (!picking.enabled && !made) return null;
  return (
    <div className="combine-section">
      {picking.enabled && <CombinePanel api={api} clips={picking.clips} onClear={picking.clear} onCombined={started} />}
      {made && <CombinedVideo key={made.id} api={api} initial={made} titleOf={picking.titleFor} onUpdate={onCombined} />}
    </div>
  );
}
