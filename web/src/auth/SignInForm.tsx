import { useId, useRef, useState, type FormEvent } from 'react';
import { ApiError, asApiError } from '../api/errors';

interface Props {
  signIn(apiKey: string): Promise<void>;
  /** Why the previous session ended, if it did not end by signing out. */
  notice: ApiError | null;
}

export function describeSignInError(error: ApiError): string {
  if (error.code === 'UNAUTHENTICATED') {
    return 'This API key was not accepted. Check that you pasted the whole key (it starts with "sg_") and that it has not been revoked.';
  }
  return error.message;
}

export function SignInForm({ signIn, notice }: Props) {
  const [apiKey, setApiKey] = useState('');
  const [error, setError] = useState<ApiError | null>(notice);
  const [pending, setPending] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const ids = { key: useId(), help: useId(), error: useId() };

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (pending) return;
    if (!apiKey.trim()) {
      setError(new ApiError('EMPTY_KEY', 'Paste your API key first.'));
      input.current?.focus();
      return;
    }
    setPending(true);
    setError(null);
    try {
      await signIn(apiKey);
    } catch (caught) {
      setError(asApiError(caught));
      setPending(false);
      input.current?.select();
    }
  }

  return (
    <main id="main" className="sign-in">
      <form className="card" onSubmit={submit} noValidate aria-labelledby="sign-in-title">
        <h1 id="sign-in-title">Sign in to Segue</h1>
        <label htmlFor={ids.key}>API key</label>
        <input
          ref={input}
          id={ids.key}
          name="apiKey"
          type="password"
          autoComplete="off"
          spellCheck={false}
          autoFocus
          required
          value={apiKey}
          onChange={(e) => setApiKey(e.target.value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={`${ids.help}${error ? ` ${ids.error}` : ''}`}
        />
        <p id={ids.help} className="hint">
          Create one with <code>npm run cli -- accounts create "My studio"</code>. It is kept in this tab only.
        </p>
        {error && (
          <p id={ids.error} className="form-error" role="alert">
            {describeSignInError(error)}
          </p>
        )}
        <button type="submit" className="primary" disabled={pending}>
          {pending ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
