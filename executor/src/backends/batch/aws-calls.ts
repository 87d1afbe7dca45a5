import type { RateLimiter } from './rate-limiter.ts';

/** Error names AWS services use for "slow down" (the SDK's own list, plus Batch's 429). */
const THROTTLING_NAMES = new Set([
  'TooManyRequestsException',
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestThrottledException',
  'SlowDown',
  'LimitExceededException',
]);

interface AwsErrorLike {
  name?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: 'client' | 'server';
  code?: string;
}

/** The service asked us to slow down: the call was not carried out and may be repeated as it is. */
export function isThrottling(error: unknown): boolean {
  const e = error as AwsErrorLike;
  return THROTTLING_NAMES.has(e?.name ?? '') || e?.$metadata?.httpStatusCode === 429;
}

/**
 * A failure that may pass on its own (5xx, a dropped connection, a timeout). For calls that change
 * something (SubmitJob) it is also ambiguous: the service may have carried the call out.
 */
export function isTransient(error: unknown): boolean {
  const e = error as AwsErrorLike;
  if (isThrottling(error)) return false;
  const status = e?.$metadata?.httpStatusCode;
  if (status !== undefined) return status >= 500;
  if (e?.$fault === 'server') return true;
  // No HTTP answer at all: network errors and timeouts.
  return (
    ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN'].includes(e?.code ?? '') ||
    ['TimeoutError', 'RequestTimeout', 'AbortError'].includes(e?.name ?? '')
  );
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Tries on transient errors (throttling is retried within the throttle budget instead). @default 3 */
  maxAttempts?: number;
}

/**
 * Makes every AWS call of the backend through its shared limiter, with the SDK's own retries off
 * (`maxAttempts: 1` on the clients), so that each HTTP request, retries included, takes a token and each
 * throttle slows the whole instance down. Throttled calls are repeated with backoff until
 * `throttleBudgetMs` has passed: throttling slows work down, it does not fail it.
 */
export class AwsCaller {
  private readonly limiter: RateLimiter;
  private readonly throttleBudgetMs: number;
  /** Calls per operation (HTTP requests, retries included), for metrics and the benchmark. */
  readonly calls = new Map<string, number>();
  readonly throttled = new Map<string, number>();

  constructor(limiter: RateLimiter, throttleBudgetMs: number) {
    this.limiter = limiter;
    this.throttleBudgetMs = throttleBudgetMs;
  }

  async call<T>(operation: string, send: () => Promise<T>, options: CallOptions = {}): Promise<T> {
    const started = Date.now();
    const maxAttempts = options.maxAttempts ?? 3;
    let failures = 0;
    let throttles = 0;
    for (;;) {
      await this.limiter.acquire(options.signal);
      this.calls.set(operation, (this.calls.get(operation) ?? 0) + 1);
      try {
        return await send();
      } catch (error) {
        if (isThrottling(error)) {
          this.throttled.set(operation, (this.throttled.get(operation) ?? 0) + 1);
          this.limiter.onThrottle();
          throttles++;
          if (Date.now() - started > this.throttleBudgetMs) throw error;
          await sleep(backoff(throttles, 200, 10_000), options.signal);
          continue;
        }
        failures++;
        if (!isTransient(error) || failures >= maxAttempts) throw error;
        await sleep(backoff(failures, 250, 8_000), options.signal);
      }
    }
  }
}

/** Exponential backoff with full jitter (AWS architecture blog's recommendation). */
function backoff(attempt: number, baseMs: number, capMs: number): number {
  return Math.random() * Math.min(capMs, baseMs * 2 ** attempt);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
