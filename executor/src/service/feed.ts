import type { Logger } from 'pino';
import { WaiterSet } from '../lib/waiters.ts';
import type { Db } from '../store/db.ts';
import { type FeedEvent, readEvents, sequenceEvents } from '../store/events.ts';
import type { Signals } from './signals.ts';

/**
 * The change feed (`GET /v1/events?after=N`): numbers new events (see store/events.ts for why numbering is
 * a separate, serialized step) and wakes the clients parked on it.
 */
export class Feed {
  private readonly waiters = new WaiterSet<'feed'>();
  private running = false;
  private again = false;
  private readonly db: Db;
  private readonly signals: Signals;
  private readonly logger: Logger;

  constructor(db: Db, signals: Signals, logger: Logger) {
    this.db = db;
    this.signals = signals;
    this.logger = logger;
    signals.on((s) => {
      if (s.kind === 'feed') this.waiters.wake('feed');
    });
    signals.onResync(() => this.poke());
  }

  /** Something wrote events: number them soon. Calls made while a run is going coalesce into one more. */
  poke(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    // Start on the next turn of the event loop: the changes made in this turn share one numbering pass.
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        const n = await sequenceEvents(this.db);
        if (n > 0) {
          this.waiters.wake('feed');
          this.signals.emit({ kind: 'feed' });
        }
      } while (this.again);
    } catch (error) {
      // Unnumbered rows stay unnumbered and are picked up by the next poke (the reaper pokes every tick).
      this.logger.warn({ err: (error as Error).message }, 'numbering change-feed events failed; will retry');
    } finally {
      this.running = false;
    }
  }

  /** Events after `after` (of one workload when `workloadId` is given), waiting up to `waitMs` for one. */
  async read(after: number, limit: number, waitMs: number, workloadId?: string): Promise<FeedEvent[]> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const events = await readEvents(this.db, after, limit, workloadId);
      const left = deadline - Date.now();
      if (events.length > 0 || left <= 0) return events;
      await this.waiters.park(['feed'], left).promise;
    }
  }

  /** Answers every parked reader now (the instance is stopping). */
  wakeAll(): void {
    this.waiters.wakeAll();
  }

  parked(): number {
    return this.waiters.size();
  }
}
