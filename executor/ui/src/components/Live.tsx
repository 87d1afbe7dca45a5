import type { FeedStatus } from '../feed.ts';

/** Whether the view follows the change feed right now, or is reconnecting (and why). */
export function Live({ status }: { status: FeedStatus }) {
  if (status.live) {
    return (
      <span class="live live-on" role="status">
        <span class="dot" aria-hidden="true" /> Live
      </span>
    );
  }
  return (
    <span class="live live-off" role="status" title={status.error ?? undefined}>
      <span class="dot" aria-hidden="true" /> {status.error ? 'Reconnecting…' : 'Connecting…'}
    </span>
  );
}
