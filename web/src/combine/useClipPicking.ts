import { useCallback, useMemo, useState } from 'react';
import type { ConsoleTransitionFragment } from '../../../src/generated/gql/graphql';
import type { PickedClip } from './CombinePanel';
import { COMBINE_LIMITS } from './status';

/** What a card needs to offer its checkbox: its place in the play order, and the toggle. */
export interface ClipPick {
  order: number | null;
  onToggle(): void;
}

const pickable = (t: ConsoleTransitionFragment) => t.status === 'COMPLETED' && t.videoUrl !== null;

/**
 * The clips of a batch picked for a combined video, in the order they were picked (the order
 * they play in). Only COMPLETED clips with a video count: one that stops being COMPLETED drops
 * out, and the ones after it move up. Picking is offered once the batch has 2 such clips.
 */
export function useClipPicking(rows: readonly ConsoleTransitionFragment[]) {
  const [picked, setPicked] = useState<readonly string[]>([]);
  const byId = useMemo(() => new Map(rows.map((t, index) => [t.id, { t, index }])), [rows]);
  const selectable = useMemo(() => new Set(rows.filter(pickable).map((t) => t.id)), [rows]);
  const selected = useMemo(() => picked.filter((id) => selectable.has(id)), [picked, selectable]);
  const enabled = selectable.size >= COMBINE_LIMITS.min;

  // Clips no longer pickable are forgotten at the next toggle, so they do not come back in their old place.
  const toggle = useCallback(
    (id: string) =>
      setPicked((list) => {
        const kept = list.filter((x) => selectable.has(x));
        return kept.includes(id) ? kept.filter((x) => x !== id) : [...kept, id];
      }),
    [selectable],
  );
  const clear = useCallback(() => setPicked([]), []);

  const pickOf = (id: string): ClipPick | undefined => {
    if (!enabled || !selectable.has(id)) return undefined;
    const index = selected.indexOf(id);
    return { order: index < 0 ? null : index + 1, onToggle: () => toggle(id) };
  };

  const clips: PickedClip[] = selected.flatMap((id) => {
    const row = byId.get(id);
    return row ? [{ id, title: titleOf(row.index), durationSeconds: row.t.durationSeconds }] : [];
  });

  /** "Transition 2" for a clip of this batch, "A clip of another batch" otherwise. */
  const titleFor = useCallback((id: string) => {
    const row = byId.get(id);
    return row ? titleOf(row.index) : 'a clip of another batch';
  }, [byId]);

  return { enabled, clips, pickOf, clear, titleFor };
}

const titleOf = (index: number) => `Transition ${index + 1}`;

export type ClipPicking = ReturnType<typeof useClipPicking>;
