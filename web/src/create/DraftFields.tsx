import type { ReactNode } from 'react';
import { ImagePreview } from '../ui/ImagePreview';
import { DURATIONS, TRANSITION_TYPES, type Draft, type DraftField, type Duration, type Side, type TransitionType } from './draft';
import { ImagePicker } from './ImagePicker';

interface Props {
  draft: Draft;
  index: number;
  errors: Partial<Record<DraftField, string>> | undefined;
  onChange(draft: Draft): void;
  /** Absent when this is the only row. */
  onRemove: (() => void) | undefined;
  /** A file picked (dropped, pasted, chosen) for a side, or null to go back to its URL. */
  onImage(side: Side, file: File | null): void;
}

/** One transition of the form: its two images (with previews), prompt and options. */
export function DraftFields({ draft, index, errors = {}, onChange, onRemove, onImage }: Props) {
  const id = (field: DraftField) => `draft-${draft.key}-${field}`;
  const set = <F extends DraftField>(field: F, value: Draft[F]) => onChange({ ...draft, [field]: value });
  const number = index + 1;

  // The props every control shares: its id, and its error (if any) announced with it.
  const control = (field: DraftField) => ({
    id: id(field),
    name: field,
    'aria-invalid': errors[field] ? true : undefined,
    'aria-describedby': errors[field] ? `${id(field)}-error` : undefined,
  });
  const field = (name: DraftField, label: string, input: ReactNode, hint?: string) => (
    <div className={`field field-${name}`}>
      <label htmlFor={id(name)}>{label}</label>
      {input}
      {hint && <p className="hint">{hint}</p>}
      {errors[name] && (
        <p id={`${id(name)}-error`} className="field-error">
          {label} {errors[name]}
        </p>
      )}
    </div>
  );

  // One side: a URL (with its preview), or a file from disk; a picked file replaces the URL.
  const side = (which: Side, label: string) => {
    const urlField = `${which}ImageUrl` as const;
    const picked = draft[`${which}Image`];
    return (
      <div className="draft-image">
        {picked === null &&
          field(
            urlField,
            `${label} URL`,
            <input {...control(urlField)} type="url" inputMode="url" autoComplete="off" value={draft[urlField]} onChange={(e) => set(urlField, e.target.value)} />,
          )}
        {picked === null && <ImagePreview url={draft[urlField]} label={label} debounceMs={400} />}
        {picked !== null && errors[urlField] && (
          <p className="field-error">
            {label} {errors[urlField]}
          </p>
        )}
        <ImagePicker label={label} picked={picked} onFile={(file) => onImage(which, file)} onClear={() => onImage(which, null)} />
      </div>
    );
  };

  return (
    <fieldset className="draft card" data-testid="draft-row">
      <legend>Transition {number}</legend>
      <div className="draft-images">
        {side('front', 'Front image')}
        <span className="draft-arrow" aria-hidden="true">→</span>
        {side('tail', 'Tail image')}
      </div>
      {field(
        'prompt',
        'Prompt',
        <textarea {...control('prompt')} required rows={2} maxLength={2500} value={draft.prompt} onChange={(e) => set('prompt', e.target.value)} />,
      )}
      <div className="draft-options">
        {field(
          'durationSeconds',
          'Duration',
          <select {...control('durationSeconds')} value={draft.durationSeconds} onChange={(e) => set('durationSeconds', Number(e.target.value) as Duration)}>
            {DURATIONS.map((seconds) => (
              <option key={seconds} value={seconds}>
                {seconds} seconds
              </option>
            ))}
          </select>,
        )}
        {field(
          'transitionType',
          'Transition type',
          <select {...control('transitionType')} value={draft.transitionType} onChange={(e) => set('transitionType', e.target.value as TransitionType)}>
            {TRANSITION_TYPES.map((type) => (
              <option key={type} value={type}>
                {type}
              </option>
            ))}
          </select>,
        )}
        {field(
          'negativePrompt',
          'Negative prompt (optional)',
          <input {...control('negativePrompt')} type="text" autoComplete="off" value={draft.negativePrompt} onChange={(e) => set('negativePrompt', e.target.value)} />,
        )}
      </div>
      {onRemove && (
        <button type="button" className="quiet remove" onClick={onRemove} aria-label={`Remove transition ${number}`}>
          Remove
        </button>
      )}
    </fieldset>
  );
}
