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

/** Waiters grouped by a key (a queue name, a worker id, the feed). */
export class WaiterSet<K> {
  private readonly byKey = new Map<K, Set<Waiter>>();

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
    if (!set) return;
    let n = 0;
    for (const waiter of set) {
      if (n >= count) break;
      waiter.notify();
      n++;
    }
  }

  wakeAll(): void {
    for (const set of this.byKey.values()) for (const waiter of set) waiter.notify();
  }

  size(): number {
    let n = 0;
    for (const set of this.byKey.values()) n += set.size;
    return n;
  }
}
