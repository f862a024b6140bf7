import { useState, type ClipboardEvent, type DragEvent } from 'react';
import type { PickedImage } from './draft';
import { formatBytes } from './image-rules';

interface Props {
  /** "Front image" or "Tail image". */
  label: string;
  picked: PickedImage | null;
  onFile(file: File): void;
  onClear(): void;
}

/**
 * An image from the user's disk: dropped, pasted or chosen. It shows at once with its size, the
 * rule it breaks (checked in the browser before anything is sent), then the upload's progress.
 */
export function ImagePicker({ label, picked, onFile, onClear }: Props) {
  const [over, setOver] = useState(false);
  const take = (files: FileList | null | undefined) => {
    const file = files?.[0];
    if (file) onFile(file);
  };
  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setOver(false);
    take(event.dataTransfer?.files);
  };
  const onPaste = (event: ClipboardEvent) => {
    if (event.clipboardData.files.length === 0) return;
    event.preventDefault();
    take(event.clipboardData.files);
  };
  const testId = label.toLowerCase().replace(/\s+/g, '-');

  return (
    <div
      className={`image-drop${over ? ' over' : ''}`}
      data-testid={`${testId}-drop`}
      data-state={picked?.state ?? 'empty'}
      role="group"
      aria-label={`${label} file: drop, paste or choose`}
      tabIndex={0}
      onDragOver={(event) => {
        event.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={onDrop}
      onPaste={onPaste}
    >
      {picked ? (
        <figure className="preview">
          <img src={picked.previewUrl} alt={`${label} preview`} />
          <figcaption data-testid={`${testId}-facts`}>
            {picked.width && picked.height ? `${picked.width}×${picked.height} px · ` : ''}
            {formatBytes(picked.bytes)}
          </figcaption>
        </figure>
      ) : (
        <p className="hint">Drop or paste an image here (JPEG, PNG or WebP), or</p>
      )}
      <label className="file-button">
        {picked ? 'Choose another file' : 'Choose a file'}
        <input
          type="file"
          accept="image/jpeg,image/png,image/webp"
          aria-label={`${label} file`}
          onChange={(event) => {
            take(event.target.files);
            event.target.value = '';
          }}
        />
      </label>
      {picked?.state === 'uploading' && (
        <progress max={1} value={picked.progress} aria-label={`${label} upload progress`}>
          {Math.round(picked.progress * 100)}%
        </progress>
      )}
      {picked?.state === 'uploaded' && <p className="hint upload-done">Uploaded</p>}
      {picked?.problem && (
        <p className="field-error" role="alert">
          {label}: {picked.problem}
        </p>
      )}
      {picked && (
        <button type="button" className="quiet" onClick={onClear}>
          Remove {label.toLowerCase()} file
        </button>
      )}
    </div>
  );
}
