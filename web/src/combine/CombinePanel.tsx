import { useEffect, useId, useRef, useState, type FormEvent } from 'react';
import type { ConsoleGeneratedTransitionFragment } from '../../../src/generated/gql/graphql';
import type { Api } from '../api/client';
import { formatSeconds } from '../ui/format';
import { COMBINE_LIMITS } from './status';
import { useCombineRequest } from './useCombineRequest';

/** A picked clip, as the panel lists it. */
export interface PickedClip {
  id: string;
  /** "Transition 2": its place in the batch. */
  title: string;
  durationSeconds: number;
}

interface Props {
  api: Api;
  /** The picked clips, in play order. */
  clips: readonly PickedClip[];
  onClear(): void;
  onCombined(combined: ConsoleGeneratedTransitionFragment): void;
}

/** The combine form: the play order, an optional audio URL, burnt-in subtitles, and the action. */
export function CombinePanel({ api, clips, onClear, onCombined }: Props) {
  const [audioUrl, setAudioUrl] = useState('');
  const [burnSubtitles, setBurnSubtitles] = useState(false);
  const request = useCombineRequest(api, onCombined);
  const form = useRef<HTMLFormElement>(null);
  const ids = { title: useId(), audio: useId(), audioHint: useId(), audioError: useId(), burn: useId(), burnHint: useId(), status: useId() };

  const count = clips.length;
  const seconds = clips.reduce((sum, c) => sum + c.durationSeconds, 0);
  const ready = count >= COMBINE_LIMITS.min && count <= COMBINE_LIMITS.max;
  const need =
    count < COMBINE_LIMITS.min
      ? `Tick at least ${COMBINE_LIMITS.min} completed clips below, in the order they should play.`
      : count > COMBINE_LIMITS.max
        ? `At most ${COMBINE_LIMITS.max} clips: untick ${count - COMBINE_LIMITS.max}.`
        : `${count} clips, about ${formatSeconds(seconds)} of video.`;

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!ready) return;
    const shown = await request.combine({
      transitionIds: clips.map((c) => c.id),
      audioUrl: audioUrl.trim() || null,
      burnSubtitles,
    });
    setFocusAfterSubmit(shown.general.length ? 'general' : shown.audioUrl ? 'audio' : null);
  }

  // After the errors are on the page (an effect runs after React has rendered them, however
  // long that takes; a next animation frame may come before).
  const [focusAfterSubmit, setFocusAfterSubmit] = useState<'general' | 'audio' | null>(null);
  useEffect(() => {
    if (focusAfterSubmit === 'general') form.current?.querySelector<HTMLElement>('.form-error')?.focus();
    else if (focusAfterSubmit === 'audio') document.getElementById(ids.audio)?.focus();
    if (focusAfterSubmit) setFocusAfterSubmit(null);
  }, [focusAfterSubmit, ids.audio]);

  const { errors } = request;
  return (
    <section className="combine card" aria-labelledby={ids.title} data-testid="combine-panel">
      <h3 id={ids.title}>Combine clips into one video</h3>
      <form ref={form} onSubmit={submit} noValidate aria-labelledby={ids.title}>
        {errors.general.length > 0 && (
          <div className="form-error" role="alert" tabIndex={-1}>
            {errors.general.map((message) => (
              <p key={message}>{message}</p>
            ))}
          </div>
        )}
        {count > 0 ? (
          <ol className="combine-order" aria-label="Play order" data-testid="combine-order">
            {clips.map((clip) => (
              <li key={clip.id}>
                {clip.title} <span className="muted">({formatSeconds(clip.durationSeconds)})</span>
              </li>
            ))}
          </ol>
        ) : (
          <p className="muted">No clips picked yet.</p>
        )}

        <div className="combine-options">
          <div className="field">
            <label htmlFor={ids.audio}>Audio URL (optional)</label>
            <input
              id={ids.audio}
              name="audioUrl"
              type="url"
              inputMode="url"
              autoComplete="off"
              placeholder="https://example.com/music.mp3"
              value={audioUrl}
              onChange={(e) => {
                setAudioUrl(e.target.value);
                request.clearAudioError();
              }}
              aria-invalid={errors.audioUrl ? true : undefined}
              aria-describedby={errors.audioUrl ? `${ids.audioError} ${ids.audioHint}` : ids.audioHint}
            />
            <p id={ids.audioHint} className="hint">
              Played under the whole video, trimmed or padded to its length.
            </p>
            {errors.audioUrl && (
              <p id={ids.audioError} className="field-error">
                Audio URL {errors.audioUrl}
              </p>
            )}
          </div>
          <div className="checkbox-field">
            <input id={ids.burn} type="checkbox" checked={burnSubtitles} onChange={(e) => setBurnSubtitles(e.target.checked)} aria-describedby={ids.burnHint} />
            <label htmlFor={ids.burn}>Burn subtitles into the picture</label>
            <p id={ids.burnHint} className="hint">
              A subtitle track (WebVTT) is made either way from the clips that have subtitles.
            </p>
          </div>
        </div>

        <div className="form-actions">
          <p id={ids.status} className="estimate" aria-live="polite" data-testid="combine-status">
            {need}
          </p>
          <button type="button" className="quiet" onClick={onClear} disabled={count === 0}>
            Clear selection
          </button>
          <button type="submit" className="primary" disabled={!ready || request.pending} aria-describedby={ids.status}>
            {request.pending ? 'Combining…' : count >= COMBINE_LIMITS.min ? `Combine ${count} clips` : 'Combine'}
          </button>
        </div>
      </form>
    </section>
  );
}
