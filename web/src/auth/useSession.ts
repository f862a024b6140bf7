import { useCallback, useEffect, useState } from 'react';
import { createApi, type Api } from '../api/client';
import { asApiError, type ApiError } from '../api/errors';
import { ConsoleViewer } from '../api/operations';
import { forgetApiKey, loadApiKey, saveApiKey } from './key-storage';

export interface Viewer {
  id: string;
  name: string;
}

export type Session =
  | { state: 'checking' }
  | { state: 'signed-out'; notice: ApiError | null }
  | { state: 'signed-in'; api: Api; viewer: Viewer };

/** A key is good when `viewer` answers with it; UNAUTHENTICATED means it is not. */
async function verify(apiKey: string): Promise<{ api: Api; viewer: Viewer }> {
  const api = createApi(apiKey);
  try {
    const { viewer } = await api.request(ConsoleViewer, {});
    return { api, viewer };
  } catch (error) {
    api.close();
    throw asApiError(error);
  }
}

/** Who is signed in, restored from this tab's session on load. */
export function useSession() {
  const [session, setSession] = useState<Session>(() =>
    loadApiKey() ? { state: 'checking' } : { state: 'signed-out', notice: null },
  );

  useEffect(() => {
    const stored = loadApiKey();
    if (!stored) return;
    let current = true;
    verify(stored).then(
      (signedIn) => {
        if (current) setSession({ state: 'signed-in', ...signedIn });
        else signedIn.api.close();
      },
      (error: ApiError) => {
        if (!current) return;
        if (error.code === 'UNAUTHENTICATED') forgetApiKey();
        setSession({ state: 'signed-out', notice: error });
      },
    );
    return () => {
      current = false;
    };
  }, []);

  /** Rejects with the ApiError (UNAUTHENTICATED for a bad key) and changes nothing. */
  const signIn = useCallback(async (apiKey: string) => {
    const signedIn = await verify(apiKey.trim());
    saveApiKey(apiKey.trim());
    setSession({ state: 'signed-in', ...signedIn });
  }, []);

  const signOut = useCallback(() => {
    forgetApiKey();
    setSession((previous) => {
      if (previous.state === 'signed-in') previous.api.close();
      return { state: 'signed-out', notice: null };
    });
  }, []);

  return { session, signIn, signOut };
}
