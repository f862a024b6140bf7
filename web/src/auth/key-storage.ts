/**
 * The API key lives in sessionStorage: it survives a reload but not closing the tab, and other
 * tabs do not see it. It is a secret, so never localStorage and never a URL.
 */
const STORAGE_KEY = 'segue.apiKey';

export function loadApiKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null; // storage disabled: the user signs in again after a reload
  }
}

export function saveApiKey(apiKey: string): void {
  try {
    sessionStorage.setItem(STORAGE_KEY, apiKey);
  } catch {
    /* storage disabled: the session lasts as long as the page */
  }
}

export function forgetApiKey(): void {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    /* nothing stored */
  }
}
