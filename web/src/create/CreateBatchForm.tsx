import { useRef, useState, type FormEvent } from 'react';
import type { Api } from '../api/client';
import { asApiError } from '../api/errors';
import { ConsoleCreateTransitions } from '../api/operations';
import { DraftFields } from './DraftFields';
import { ConsoleUploadImage } from '../api/operations';
import { emptyDraft, fieldErrorsFrom, imagesBlocking, newIdempotencyKey, noFieldErrors, toTransitionInput, type Draft, type DraftField, type FieldErrors, type PickedImage, type Side } from './draft';
import { brokenRule, readDimensions } from './image-rules';

/** The API takes 1 to 100 transitions per call. */
const MAX_ROWS = 100;

interface Props {
  api: Api;
  onCreated(batchId: string): void;
}

/** New transitions, several at once, generated as one batch. */
export function CreateBatchForm({ api, onCreated }: Props) {
  const [drafts, setDrafts] = useState<Draft[]>(() => [emptyDraft()]);
  const [errors, setErrors] = useState<FieldErrors>(noFieldErrors);
  const [pending, setPending] = useState(false);
  const form = useRef<HTMLFormElement>(null);
  // One key per version of the form: a double click or a resend repeats it (the API then returns
  // the first result), while an edited form is a new request with a new key.
  const idempotencyKey = useRef<string | null>(null);
  const inFlight = useRef(false);

  const edit = (next: Draft[]) => {
    setDrafts(next);
    idempotencyKey.current = null;
  };
  const addRow = () => {
    edit([...drafts, emptyDraft()]);
    // Keyboard users land in the new row.
    requestAnimationFrame(() => form.current?.querySelector<HTMLElement>('[data-testid="draft-row"]:last-of-type input')?.focus());
  };

  // Uploads report progress long after the click: patch the row by key on the latest state.
  const patchImage = (key: number, side: Side, patch: Partial<PickedImage> | null) => {
    setDrafts((current) =>
      current.map((d) => {
        if (d.key !== key) return d;
        const field = `${side}Image` as const;
        const previous = d[field];
        if (patch === null) {
          if (previous) URL.revokeObjectURL(previous.previewUrl);
          return { ...d, [field]: null };
        }
        return previous ? { ...d, [field]: { ...previous, ...patch } } : d;
      }),
    );
    idempotencyKey.current = null;
  };

  /** A file for one side: shown at once, checked by the rules, then uploaded with progress. */
  async function pickImage(key: number, side: Side, file: File | null) {
    patchImage(key, side, null);
    if (!file) return;
    const picked: PickedImage = {
      previewUrl: URL.createObjectURL(file),
      name: file.name,
      bytes: file.size,
      width: null,
      height: null,
      state: 'checking',
      progress: 0,
      problem: null,
      imageId: null,
    };
    setDrafts((current) => current.map((d) => (d.key === key ? { ...d, [`${side}Image`]: picked } : d)));
    const size = await readDimensions(file);
    if (!size) return patchImage(key, side, { state: 'invalid', problem: 'This file cannot be read as an image.' });
    const problem = brokenRule({ ...size, bytes: file.size, type: file.type });
    patchImage(key, side, { ...size, state: problem ? 'invalid' : 'uploading', problem });
    if (problem) return;
    try {
      const { uploadImage } = await api.upload(ConsoleUploadImage, file, (sent, total) => patchImage(key, side, { progress: total ? sent / total : 0 }));
      patchImage(key, side, { state: 'uploaded', progress: 1, imageId: uploadImage.id, width: uploadImage.width, height: uploadImage.height });
    } catch (caught) {
      patchImage(key, side, { state: 'failed', problem: asApiError(caught).message });
    }
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (inFlight.current || imagesBlocking(drafts)) return;
    inFlight.current = true;
    setPending(true);
    idempotencyKey.current ??= newIdempotencyKey();
    try {
      const { createTransitions } = await api.request(ConsoleCreateTransitions, {
        input: { transitions: drafts.map(toTransitionInput), generate: true, idempotencyKey: idempotencyKey.current },
      });
      if (!createTransitions.batch) throw new Error('The API created the transitions but no batch.');
      setErrors(noFieldErrors);
      onCreated(createTransitions.batch.id);
    } catch (caught) {
      const found = fieldErrorsFrom(asApiError(caught));
      setErrors(found);
      focusFirstError(found);
    } finally {
      inFlight.current = false;
      setPending(false);
    }
  }

  function focusFirstError(found: FieldErrors) {
    const [index, fields] = [...found.rows.entries()].sort(([a], [b]) => a - b)[0] ?? [];
    const draft = index === undefined ? undefined : drafts[index];
    const field = fields && (Object.keys(fields)[0] as DraftField | undefined);
    requestAnimationFrame(() => {
      if (draft && field) document.getElementById(`draft-${draft.key}-${field}`)?.focus();
      else form.current?.querySelector<HTMLElement>('.form-error')?.focus();
    });
  }

  const seconds = drafts.reduce((sum, d) => sum + d.durationSeconds, 0);
  const count = `${drafts.length} transition${drafts.length === 1 ? '' : 's'}`;

  return (
    <section aria-labelledby="create-title">
      <h2 id="create-title" tabIndex={-1}>
        New batch
      </h2>
      <p className="lede">
        Pairs of images (URLs, or files you drop, paste or choose) and a prompt; Kling generates a video morphing the
        front image into the tail image.
      </p>
      <form ref={form} onSubmit={submit} noValidate aria-labelledby="create-title">
        {errors.general.length > 0 && (
          <div className="form-error" role="alert" tabIndex={-1}>
            {errors.general.map((message) => (
              <p key={message}>{message}</p>
            ))}
          </div>
        )}
        {errors.rows.size > 0 && (
          <p className="form-error" role="alert">
            Some fields need attention: see the messages below them.
          </p>
        )}
        {drafts.map((draft, index) => (
          <DraftFields
            key={draft.key}
            draft={draft}
            index={index}
            errors={errors.rows.get(index)}
            onChange={(next) => edit(drafts.map((d) => (d.key === next.key ? next : d)))}
            onImage={(side, file) => void pickImage(draft.key, side, file)}
            onRemove={
              drafts.length > 1
                ? () => {
                    edit(drafts.filter((d) => d.key !== draft.key));
                    // The row indexes shift: old messages would point at the wrong rows.
                    setErrors(noFieldErrors);
                  }
                : undefined
            }
          />
        ))}
        <div className="form-actions">
          <button type="button" onClick={addRow} disabled={drafts.length >= MAX_ROWS}>
            Add transition
          </button>
          {/* The price is the API's (Batch.estimatedCost): shown with the batch, at the server's rates. */}
          <p className="estimate" aria-live="polite" data-testid="draft-summary">
            <strong>{count}</strong>, {seconds} s of video{' '}
            <span className="muted">(the estimated cost shows with the batch)</span>
          </p>
          {imagesBlocking(drafts) && (
            <p className="hint" data-testid="images-pending">
              Waiting for images: each picked file must pass the rules and finish uploading.
            </p>
          )}
          <button type="submit" className="primary" disabled={pending || imagesBlocking(drafts)}>
            {pending ? 'Creating…' : `Generate ${count}`}
          </button>
        </div>
      </form>
    </section>
  );
}
