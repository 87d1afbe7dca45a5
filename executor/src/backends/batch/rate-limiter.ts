/**
 * A token bucket whose rate adapts to throttling (additive increase, multiplicative decrease, as TCP and
 * the AWS SDK's adaptive retry mode do): a throttled call halves the rate and pauses everyone briefly;
 * every second without throttling gives back a tenth of the configured rate, up to it.
 *
 * AWS quotas are per account and region, not per client, so every caller of one account and region in this
 * process shares one bucket ({@link sharedLimiter}): the submit lanes, the status loop, cancels and
 * reconcile all draw from it, and none can starve the others of more than its turn.
 */
export class RateLimiter {
  /** The configured ceiling, calls per second. */
  readonly maxRate: number;
  readonly burst: number;
  private rate: number;
  private tokens: number;
  private at: number;
  private pausedUntil = 0;
  private lastThrottle = 0;
  private readonly waiting: Array<{ resolve: () => void; reject: (e: Error) => void; signal?: AbortSignal }> = [];
  private timer: NodeJS.Timeout | null = null;
  /** Calls granted and throttles reported, for metrics and the benchmark. */
  granted = 0;
  throttles = 0;

  constructor(maxRate: number, burst = Math.max(1, Math.ceil(maxRate))) {
    this.maxRate = maxRate;
    this.burst = burst;
    this.rate = maxRate;
    this.tokens = burst;
    this.at = Date.now();
  }

  /** The current rate, calls per second (below the maximum after throttling). */
  get currentRate(): number {
    this.refill(Date.now());
    return this.rate;
  }

  /** How many callers wait for a token. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Resolves when the caller may make one call. Rejects with the signal's reason when it is aborted first. */
  acquire(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, ...(signal ? { signal } : {}) };
      this.waiting.push(entry);
      signal?.addEventListener(
        'abort',
        () => {
          const i = this.waiting.indexOf(entry);
          if (i >= 0) {
            this.waiting.splice(i, 1);
            reject(abortError(signal));
          }
        },
        { once: true },
      );
      this.drain();
    });
  }

  /** A call was throttled by the service: slow down for everyone. */
  onThrottle(): void {
    const now = Date.now();
    this.throttles++;
    // One burst of throttles (the calls in flight when the quota ran out) counts as one signal.
    if (now - this.lastThrottle > 1_000 / Math.max(this.rate, 0.1)) {
      this.refill(now);
      this.rate = Math.max(this.maxRate / 20, this.rate / 2);
      this.tokens = Math.min(this.tokens, 0);
    }
    this.lastThrottle = now;
    this.pausedUntil = Math.max(this.pausedUntil, now + 1_000 / this.rate);
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const w of this.waiting.splice(0)) w.reject(new Error('the rate limiter was closed'));
  }

  private refill(now: number): void {
    const elapsed = (now - this.at) / 1000;
    this.at = now;
    if (now - this.lastThrottle > 1_000 && this.rate < this.maxRate) {
      this.rate = Math.min(this.maxRate, this.rate + (this.maxRate / 10) * elapsed);
    }
    if (now >= this.pausedUntil) this.tokens = Math.min(this.burst, this.tokens + elapsed * this.rate);
  }

  private drain(): void {
    if (this.timer) return;
    const now = Date.now();
    this.refill(now);
    while (this.waiting.length > 0 && this.tokens >= 1 && now >= this.pausedUntil) {
      this.tokens -= 1;
      this.granted++;
      this.waiting.shift()!.resolve();
    }
    if (this.waiting.length === 0) return;
    const wait = Math.max(this.pausedUntil - now, ((1 - this.tokens) / this.rate) * 1000, 1);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.drain();
    }, wait);
    this.timer.unref?.();
  }
}

const shared = new Map<string, { limiter: RateLimiter; users: number }>();

/**
 * The one limiter of `key` (account and region, and the service: Batch and CloudWatch Logs have separate
 * quotas) in this process. The first caller's rate wins; later ones get the same bucket.
 */
export function sharedLimiter(key: string, maxRate: number, burst?: number): RateLimiter {
  let entry = shared.get(key);
  if (!entry) {
    entry = { limiter: new RateLimiter(maxRate, burst), users: 0 };
    shared.set(key, entry);
  }
  entry.users++;
  return entry.limiter;
}

/** One user of `key` is done with it; the limiter goes with the last one. */
export function releaseLimiter(key: string): void {
  const entry = shared.get(key);
  if (!entry || --entry.users > 0) return;
  entry.limiter.close();
  shared.delete(key);
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}
