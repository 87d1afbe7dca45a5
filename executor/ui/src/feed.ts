import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, get, isAbort, sleep } from './api.ts';
import type { FeedEvent } from './types.ts';

/** How long one read of the change feed waits for news on the service (a long-poll, not a polling loop). */
const WAIT_MS = 25_000;

export type FeedStatus = { live: true } | { live: false; error: string | null };

export interface FeedHandlers {
  /**
   * Called once the feed's current end is known and before any event is delivered: the place to load a
   * snapshot (a list). Events after that end are delivered next, so nothing that changes after the snapshot
   * is missed; events the snapshot already shows may arrive again and must be applied idempotently.
   */
  ready: (signal: AbortSignal) => Promise<void>;
  events: (events: FeedEvent[]) => void;
}

/**
 * Follows the change feed (GET /v1/events with waitMs) for as long as the component is mounted: the page
 * learns of every state change within a round trip and sends one request per change batch or per
 * WAIT_MS when nothing happens. Errors retry with backoff; the status says whether the view is live.
 */
export function useFeed(handlers: FeedHandlers, deps: readonly unknown[]): FeedStatus {
  const [status, setStatus] = useState<FeedStatus>({ live: false, error: null });
  const latest = useRef(handlers);
  latest.current = handlers;

  // The caller names what restarts the feed (`deps`); the handlers are read through a ref.
  useEffect(() => {
    const abort = new AbortController();
    const { signal } = abort;
    void (async () => {
      let backoff = 500;
      let after: number | null = null;
      while (!signal.aborted) {
        try {
          if (after === null) {
            const head = await get<{ last: number }>('/v1/events/head', undefined, signal);
            await latest.current.ready(signal);
            after = head.last;
            setStatus({ live: true });
          }
          const page: { events: FeedEvent[]; last: number } = await get(
            '/v1/events',
            { after, waitMs: WAIT_MS, limit: 1000 },
            signal,
          );
          after = page.last;
          backoff = 500;
          setStatus({ live: true });
          if (page.events.length > 0) latest.current.events(page.events);
        } catch (error) {
          if (isAbort(error) || signal.aborted) return;
          setStatus({ live: false, error: error instanceof ApiError ? error.message : String(error) });
          if (error instanceof ApiError && error.status === 401) return; // the login takes over
          await sleep(backoff, signal).catch(() => undefined);
          backoff = Math.min(backoff * 2, 10_000);
        }
      }
    })();
    return () => abort.abort();
  }, deps);

  return status;
}

/** Order of progress within one attempt: an event never moves a row back (a late duplicate, a snapshot race). */
const RANK: Record<string, number> = {
  queued: 0,
  submitting: 1,
  pending: 2,
  running: 3,
  succeeded: 4,
  failed: 4,
  cancelled: 4,
};

/** Whether an event is newer than what a row shows: a later attempt, or further along in the same one. */
export function isNewer(event: { attempt: number; state: string }, row: { attempt: number; state: string }): boolean {
  if (event.attempt !== row.attempt) return event.attempt > row.attempt;
  return (RANK[event.state] ?? 0) > (RANK[row.state] ?? 0);
}
