import { useId } from 'react';

interface Props {
  /** "Transition 2". */
  title: string;
  /** 1-based place in the combined video, or null when not picked. */
  order: number | null;
  onToggle(): void;
}

/** Picks a completed clip for the combined video; once picked, shows its place in the play order. */
export function ClipCheckbox({ title, order, onToggle }: Props) {
  const id = useId();
  return (
    <div className="clip-select" data-testid="clip-select">
      <input id={id} type="checkbox" checked={order !== null} onChange={onToggle} aria-describedby={order !== null ? `${id}-order` : undefined} />
      <label htmlFor={id}>
        Combine<span className="visually-hidden"> {title.toLowerCase()}</span>
      </label>
      {order !== null && (
        <span id={`${id}-order`} className="clip-order" data-testid="clip-order" data-order={order}>
          <span aria-hidden="true">{order}</span>
          <span className="visually-hidden">Plays {ordinal(order)} in the combined video</span>
        </span>
      )}
    </div>
  );
}

const SUFFIXES: Record<string, string> = { one: 'st', two: 'nd', few: 'rd', other: 'th' };
const rules = new Intl.PluralRules('en-US', { type: 'ordinal' });

/** 1 → "1st", 2 → "2nd", 11 → "11th". */
export const ordinal = (n: number) => `${n}${SUFFIXES[rules.select(n)] ?? 'th'}`;
