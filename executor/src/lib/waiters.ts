/**
 * Parked long-polls. A waiter resolves when woken or when its time is up, whichever comes first; idle
 * clients cost a timer and a closure, not a database query per poll.
 */
export class Waiter {
  private wake: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private settled = false;
  readonly promise: Promise<'woken' | 'timeout'>;
  /** Called once, synchronously, when the waiter settles (to leave its sets at once). */
  onSettle: (() => void) | null = null;

  constructor(timeoutMs: number) {
    this.promise = new Promise((resolve) => {
      this.wake = () => resolve('woken');
      this.timer = setTimeout(() => {
        this.settle();
        resolve('timeout');
      }, timeoutMs);
    });
  }

  get woken(): boolean {
    return this.settled;
  }

  notify(): void {
    if (this.settled) return;
    this.settle();
    this.wake?.();
  }

  private settle(): void {
    this.settled = true;
    if (this.timer) clearTimeout(this.timer);
    this.onSettle?.();
  }
}

/** Where the record of unanswered wake-ups is wiped rather than grown (wiping only costs extra looks). */
const MAX_RECORDED_KEYS = 100_000;

/**
 * Waiters grouped by a key (a queue name, a worker id, the feed).
 *
 * It also remembers wake-ups that no parked waiter answered, numbered by a generation counter, so a client
 * between two parks (its database pass under way) can ask "was I signalled since generation g?". Without
 * that, a submission committed while a lone worker's lease pass ran (too late for its snapshot, too early
 * for its park) woke nobody and waited out the worker's whole poll.
 */
export class WaiterSet<K> {
  private readonly byKey = new Map<K, Set<Waiter>>();
  private generation = 0;
  /** Per key, the generation of its last wake-up that fewer waiters answered than it asked for. */
  private readonly unanswered = new Map<K, number>();
  /** The generation of the last wake-up of everything. */
  private everythingAt = 0;
  private readonly remember: boolean;

  /** `remember`: keep the record of unanswered wake-ups (log followers have no use for it). */
  constructor(options: { remember?: boolean } = {}) {
    this.remember = options.remember ?? false;
  }

  /** The current generation: pass it to `signalledSince` later. */
  mark(): number {
    return this.generation;
  }

  /** Whether a wake-up for any of `keys` (or for everything) went unanswered after generation `mark`. */
  signalledSince(keys: readonly K[], mark: number): boolean {
    if (this.everythingAt > mark) return true;
    for (const key of keys) if ((this.unanswered.get(key) ?? 0) > mark) return true;
    return false;
  }

  park(keys: readonly K[], timeoutMs: number): Waiter {
    const waiter = new Waiter(timeoutMs);
    for (const key of keys) {
      let set = this.byKey.get(key);
      if (!set) {
        set = new Set();
        this.byKey.set(key, set);
      }
      set.add(waiter);
    }
    // Leave every set the moment it settles, so a later wake-up goes to a waiter still waiting instead of
    // being absorbed by one that was already woken.
    waiter.onSettle = () => {
      for (const key of keys) {
        const set = this.byKey.get(key);
        set?.delete(waiter);
        if (set?.size === 0) this.byKey.delete(key);
      }
    };
    return waiter;
  }

  /**
   * Wakes up to `count` waiters on `key`, oldest first (Infinity: all of them). The sets are walked live, not
   * copied: with thousands of parked polls on one queue, a copy per wake-up was an array of all of them for a
   * notify or two. Walking live is safe: notify() only removes the waiter from its sets (a Set or Map
   * iteration survives deletions) and parks nothing synchronously.
   */
  wake(key: K, count = Infinity): void {
    const set = this.byKey.get(key);
    let n = 0;
    if (set) {
      for (const waiter of set) {
        if (n >= count) break;
        waiter.notify();
        n++;
      }
    }
    // A wake-up for all (count Infinity: a worker's own keys) concerns clients between parks as well; a
    // counted one does only if the parked waiters could not take all of it.
    if (this.remember && (count === Infinity || n < count)) {
      if (this.unanswered.size >= MAX_RECORDED_KEYS) {
        this.unanswered.clear();
        this.everythingAt = this.generation + 1;
      }
      this.unanswered.set(key, ++this.generation);
    }
  }

  wakeAll(): void {
    for (const set of this.byKey.values()) for (const waiter of set) waiter.notify();
    this.unanswered.clear();
    this.everythingAt = ++this.generation;
  }

  size(): number {
    let n = 0;
    for (const set of this.byKey.values()) n += set.size;
    return n;
  }
}
