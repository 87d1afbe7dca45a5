import type { Histogram } from 'prom-client';
import type { ServiceMetrics } from './metrics.ts';

/** Latency quantiles of one interval (or of everything since the start), seconds; null when nothing was seen. */
export interface Quantiles {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
}

/** What happened in one sampling interval: counts, and the latencies of what was dispatched and started. */
export interface DispatchSample {
  /** End of the interval. */
  at: string;
  seconds: number;
  submitted: number;
  dispatched: number;
  started: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  dispatchLatency: Quantiles | null;
  startLatency: Quantiles | null;
}

export interface DispatchHistory {
  intervalSeconds: number;
  /** When this instance began sampling: the series covers no more than that. */
  since: string;
  samples: DispatchSample[];
  total: { dispatchLatency: Quantiles | null; startLatency: Quantiles | null };
}

/** A histogram's state summed over its labels: cumulative counts per upper bound (the last one is +Inf). */
export interface Buckets {
  bounds: number[];
  cumulative: number[];
  count: number;
  sum: number;
}

interface Snapshot {
  at: number;
  submitted: number;
  finished: { succeeded: number; failed: number; cancelled: number };
  dispatch: Buckets;
  start: Buckets;
}

/**
 * The dashboard's "dispatch over time", from the service's own Prometheus histograms and counters: a
 * snapshot every `intervalMs`, the last `keep` of them in memory (an hour at the defaults, ~100 KB), and
 * per-interval quantiles estimated from the bucket deltas the way PromQL's histogram_quantile does. Per
 * instance, like /metrics: with several instances each one reports what it dispatched itself.
 */
export class MetricsHistory {
  private readonly metrics: ServiceMetrics;
  private readonly intervalMs: number;
  private readonly keep: number;
  private readonly snapshots: Snapshot[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly startedAt = Date.now();

  constructor(metrics: ServiceMetrics, options: { intervalMs?: number; keep?: number } = {}) {
    this.metrics = metrics;
    this.intervalMs = options.intervalMs ?? 10_000;
    this.keep = options.keep ?? 360;
  }

  start(): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The series so far, ending with the interval from the last snapshot to now (so a new page shows now). */
  async history(): Promise<DispatchHistory> {
    const now = await this.snapshot();
    const points = [...this.snapshots, now];
    const samples: DispatchSample[] = [];
    for (let i = 1; i < points.length; i++) samples.push(difference(points[i - 1]!, points[i]!));
    return {
      intervalSeconds: this.intervalMs / 1000,
      since: new Date(this.snapshots[0]?.at ?? this.startedAt).toISOString(),
      samples,
      total: { dispatchLatency: quantiles(now.dispatch), startLatency: quantiles(now.start) },
    };
  }

  private async sample(): Promise<void> {
    try {
      this.snapshots.push(await this.snapshot());
      if (this.snapshots.length > this.keep) this.snapshots.shift();
    } catch {
      // prom-client reads in-memory values only; nothing here can fail but a bug, and a gap is harmless.
    }
  }

  private async snapshot(): Promise<Snapshot> {
    const [submitted, finished, dispatch, start] = await Promise.all([
      this.metrics.submitted.get(),
      this.metrics.finished.get(),
      buckets(this.metrics.dispatchLatency),
      buckets(this.metrics.startLatency),
    ]);
    const byState = { succeeded: 0, failed: 0, cancelled: 0 };
    for (const v of finished.values) {
      const state = v.labels.state as keyof typeof byState;
      if (state in byState) byState[state] += v.value;
    }
    return {
      at: Date.now(),
      submitted: submitted.values.reduce((n, v) => n + v.value, 0),
      finished: byState,
      dispatch,
      start,
    };
  }
}

async function buckets(histogram: Histogram<string>): Promise<Buckets> {
  const { values } = await histogram.get();
  const byBound = new Map<number, number>();
  let count = 0;
  let sum = 0;
  for (const v of values) {
    if (v.metricName?.endsWith('_bucket')) {
      const le = v.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(v.labels.le);
      byBound.set(le, (byBound.get(le) ?? 0) + v.value);
    } else if (v.metricName?.endsWith('_count')) count += v.value;
    else if (v.metricName?.endsWith('_sum')) sum += v.value;
  }
  const bounds = [...byBound.keys()].sort((a, b) => a - b);
  return { bounds, cumulative: bounds.map((b) => byBound.get(b)!), count, sum };
}

function minus(a: Buckets, b: Buckets): Buckets {
  // A queue label seen for the first time adds series, never bounds: both have the same bounds, or `b` none.
  return {
    bounds: a.bounds,
    cumulative: a.cumulative.map((c, i) => c - (b.cumulative[i] ?? 0)),
    count: a.count - b.count,
    sum: a.sum - b.sum,
  };
}

function difference(before: Snapshot, after: Snapshot): DispatchSample {
  const dispatch = minus(after.dispatch, before.dispatch);
  const start = minus(after.start, before.start);
  return {
    at: new Date(after.at).toISOString(),
    seconds: Math.max(0.001, (after.at - before.at) / 1000),
    submitted: after.submitted - before.submitted,
    dispatched: dispatch.count,
    started: start.count,
    succeeded: after.finished.succeeded - before.finished.succeeded,
    failed: after.finished.failed - before.finished.failed,
    cancelled: after.finished.cancelled - before.finished.cancelled,
    dispatchLatency: quantiles(dispatch),
    startLatency: quantiles(start),
  };
}

export function quantiles(b: Buckets): Quantiles | null {
  if (b.count <= 0) return null;
  return {
    count: b.count,
    mean: b.sum / b.count,
    p50: quantile(b, 0.5),
    p90: quantile(b, 0.9),
    p99: quantile(b, 0.99),
  };
}

/**
 * The q-quantile of a cumulative histogram, interpolating linearly inside the bucket that holds it (as
 * PromQL's histogram_quantile); in the +Inf bucket, the highest finite bound.
 */
export function quantile(b: Buckets, q: number): number {
  const rank = q * b.count;
  for (let i = 0; i < b.bounds.length; i++) {
    const upTo = b.cumulative[i]!;
    if (upTo < rank) continue;
    const upper = b.bounds[i]!;
    const lower = i === 0 ? 0 : b.bounds[i - 1]!;
    if (!Number.isFinite(upper)) return lower;
    const below = i === 0 ? 0 : b.cumulative[i - 1]!;
    const inBucket = upTo - below;
    return inBucket > 0 ? lower + ((upper - lower) * (rank - below)) / inBucket : upper;
  }
  return b.bounds.filter(Number.isFinite).at(-1) ?? 0;
}
