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

/** A wake-up that parked waiters could not take in full: its generation and what is left of it. */
interface Unanswered {
  generation: number;
  /** How much of it is left for clients between parks to take (Infinity: a wake-up of all, never used up). */
  left: number;
}

/**
 * Waiters grouped by a key (a queue name, a worker id, the feed).
 *
 * It also remembers wake-ups that no parked waiter answered, numbered by a generation counter, so a client
 * between two parks (its database pass under way) can ask "was I signalled since generation g?". Without
 * that, a submission committed while a lone worker's lease pass ran (too late for its snapshot, too early
 * for its park) woke nobody and waited out the worker's whole poll.
 *
 * A counted wake-up (n workloads queued) is worth n, and each waiter is worth what it can take (a poll's
 * free slots): a wake-up wakes waiters until their worth covers it, and what is left of it goes to clients
 * between parks, each taking its worth, so that n new workloads cost about n / slots lease passes, not n,
 * nor one per poll in flight (at hundreds of submissions a second every poll is in flight at times).
 */
export class WaiterSet<K> {
  private readonly byKey = new Map<K, Set<Waiter>>();
  private readonly worth = new WeakMap<Waiter, number>();
  /** The keys each parked waiter is in (extend adds to them). */
  private readonly joined = new WeakMap<Waiter, K[]>();
  private generation = 0;
  /** Per key, its last wake-up that the waiters parked then could not take in full. */
  private readonly unanswered = new Map<K, Unanswered>();
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

  /**
   * Whether a wake-up for any of `keys` (or for everything) went unanswered after generation `mark`. The
   * caller will look again: it takes `worth` of what is left of a counted wake-up (a wake-up of all stays
   * for everybody), so the next client between parks looks again only if something is still left.
   */
  signalledSince(keys: readonly K[], mark: number, worth = Infinity): boolean {
    if (this.everythingAt > mark) return true;
    let signalled = false;
    for (const key of keys) {
      const record = this.unanswered.get(key);
      if (!record || record.generation <= mark || record.left <= 0) continue;
      signalled = true;
      if (record.left !== Infinity) {
        record.left -= worth;
        if (record.left <= 0) this.unanswered.delete(key);
      }
    }
    return signalled;
  }

  /** Parks a waiter on `keys`; `worth`: how much of a counted wake-up it takes (a poll's free slots). */
  park(keys: readonly K[], timeoutMs: number, worth = 1): Waiter {
    const waiter = new Waiter(timeoutMs);
    this.worth.set(waiter, Math.max(1, worth));
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
    const joined = [...keys];
    this.joined.set(waiter, joined);
    waiter.onSettle = () => {
      for (const key of joined) {
        const set = this.byKey.get(key);
        set?.delete(waiter);
        if (set?.size === 0) this.byKey.delete(key);
      }
    };
    return waiter;
  }

  /**
   * A parked waiter now also waits on `keys`, and is worth `worth` (a full worker's poll whose slots came
   * free: it waits on its queues from now on, without a round trip). False if it is no longer parked.
   */
  extend(waiter: Waiter, keys: readonly K[], worth: number): boolean {
    const joined = this.joined.get(waiter);
    if (waiter.woken || !joined) return false;
    this.worth.set(waiter, Math.max(1, worth));
    for (const key of keys) {
      if (joined.includes(key)) continue;
      joined.push(key);
      let set = this.byKey.get(key);
      if (!set) {
        set = new Set();
        this.byKey.set(key, set);
      }
      set.add(waiter);
    }
    return true;
  }

  /**
   * Wakes waiters on `key`, oldest first, until their worth covers `count` (Infinity: all of them). The sets
   * are walked live, not copied: with thousands of parked polls on one queue, a copy per wake-up was an
   * array of all of them for a notify or two. Walking live is safe: notify() only removes the waiter from
   * its sets (a Set or Map iteration survives deletions) and parks nothing synchronously.
   */
  wake(key: K, count = Infinity): void {
    const set = this.byKey.get(key);
    let covered = 0;
    if (set) {
      for (const waiter of set) {
        if (covered >= count) break;
        covered += this.worth.get(waiter) ?? 1;
        waiter.notify();
      }
    }
    // A wake-up for all (count Infinity: a worker's own keys) concerns clients between parks as well; a
    // counted one only for what the parked waiters could not take.
    if (this.remember && (count === Infinity || covered < count)) {
      if (this.unanswered.size >= MAX_RECORDED_KEYS) {
        this.unanswered.clear();
        this.everythingAt = this.generation + 1;
      }
      const left = count === Infinity ? Infinity : count - covered;
      const before = this.unanswered.get(key);
      this.unanswered.set(key, { generation: ++this.generation, left: left + (before?.left ?? 0) });
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
