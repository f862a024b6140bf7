import { useState } from 'react';
import { useDebouncedValue } from './useDebouncedValue';

const isHttpUrl = (value: string) => {
  try {
    const { protocol } = new URL(value);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
};

interface Props {
  url: string;
  /** What the image is, for its alt text: "Front image". */
  label: string;
  /** Wait this long after typing stops before loading (form previews). */
  debounceMs?: number;
}

/** A thumbnail of an image URL, or a short note why there is none. */
export function ImagePreview({ url, label, debounceMs = 0 }: Props) {
  const settled = useDebouncedValue(url.trim(), debounceMs);
  return (
    <figure className="preview">
      {isHttpUrl(settled) ? (
        // keyed by URL: a new URL gets a fresh load state
        <LoadingImage key={settled} url={settled} label={label} />
      ) : (
        <div className="preview-empty">{settled ? 'Not an http(s) URL' : 'No image yet'}</div>
      )}
      <figcaption>{label}</figcaption>
    </figure>
  );
}

function LoadingImage({ url, label }: { url: string; label: string }) {
  const [failed, setFailed] = useState(false);
  if (failed) return <div className="preview-empty">Preview unavailable</div>;
  return <img src={url} alt={`${label} preview`} loading="lazy" decoding="async" onError={() => setFailed(true)} />;
}
