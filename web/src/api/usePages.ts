import { useCallback, useEffect, useState } from 'react';
import { asApiError } from './errors';

/** One page of a relay connection, as the console's list queries select it. */
export interface Page<T> {
  edges: ReadonlyArray<{ node: T }>;
  pageInfo: { hasNextPage: boolean; endCursor?: string | null };
}

/**
 * A relay connection, page after page: the first page loads on mount and again whenever
 * `reloadKey` changes; `more()` appends the next page while there is one.
 */
export function usePages<T>(fetchPage: (after: string | null) => Promise<Page<T>>, reloadKey?: unknown) {
  const [items, setItems] = useState<T[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(
    async (after: string | null) => {
      try {
        const page = await fetchPage(after);
        const nodes = page.edges.map((e) => e.node);
        setItems((previous) => (after ? [...previous, ...nodes] : nodes));
        setNext(page.pageInfo.hasNextPage ? (page.pageInfo.endCursor ?? null) : null);
        setError(null);
      } catch (caught) {
        setError(asApiError(caught).message);
      }
    },
    [fetchPage],
  );

  useEffect(() => {
    void load(null);
  }, [load, reloadKey]);

  return { items, error, more: next ? () => void load(next) : null };
}
