import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, isAbort } from './api.ts';

export interface Loaded<T> {
  data: T | null;
  error: ApiError | null;
  /** When data was last loaded (ms), for ages counted on from there. */
  at: number;
  reload: () => Promise<void>;
}

/**
 * Loads `fn` now, when `deps` change, on `reload()`, and every `everyMs` while the page is visible (for
 * what has no change feed: worker heartbeats, pools, dispatch figures). A failed load keeps the last data.
 */
export function useLoader<T>(fn: (signal: AbortSignal) => Promise<T>, deps: readonly unknown[], everyMs?: number) {
  const [state, setState] = useState<{ data: T | null; error: ApiError | null; at: number }>({
    data: null,
    error: null,
    at: 0,
  });
  const latest = useRef(fn);
  latest.current = fn;
  const running = useRef<AbortController | null>(null);

  const reload = useCallback(async () => {
    running.current?.abort();
    const abort = new AbortController();
    running.current = abort;
    try {
      const data = await latest.current(abort.signal);
      if (!abort.signal.aborted) setState({ data, error: null, at: Date.now() });
    } catch (error) {
      if (isAbort(error) || abort.signal.aborted) return;
      const e = error instanceof ApiError ? error : new ApiError(0, 'error', String(error));
      setState((s) => ({ ...s, error: e }));
    }
  }, []);

  // The caller names what reloads (`deps`); the loader is read through a ref.
  useEffect(() => {
    void reload();
    if (!everyMs) return () => running.current?.abort();
    const timer = setInterval(() => {
      if (document.visibilityState === 'visible') void reload();
    }, everyMs);
    return () => {
      clearInterval(timer);
      running.current?.abort();
    };
  }, deps);

  return { ...state, reload } as Loaded<T>;
}

/** Re-renders every `ms`, for ages ("4 s ago") that count on between loads. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}
