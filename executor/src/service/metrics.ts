import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Db } from '../store/db.ts';
import { countWorkersByState, WORKER_STATES } from '../store/workers.ts';
import { type QueueStats, queueStats } from '../store/workloads.ts';

/** Buckets of the queue → dispatch and queue → start histograms, seconds. */
const DISPATCH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Distinct queue names that get a label of their own; the rest share `other` (see queueLabel). */
const MAX_QUEUE_LABELS = 200;

/**
 * Prometheus metrics of one service instance. Gauges that need the database are read at scrape time, from
 * one query per scrape however many gauges use it. Queue names come from users, so the number of label
 * values is bounded: past MAX_QUEUE_LABELS distinct queues, the rest are counted under `other`.
 */
export class ServiceMetrics {
  readonly registry = new Registry();
  readonly dispatchLatency: Histogram<'queue'>;
  readonly startLatency: Histogram<'queue'>;
  readonly submitted: Counter<'queue' | 'backend'>;
  readonly finished: Counter<'queue' | 'state' | 'reason'>;
  readonly leaseLatency: Histogram;
  readonly pollPasses: Counter<'outcome'>;

  private readonly queueLabels = new Set<string>();
  private stats: { at: number; value: Promise<QueueStats[]> } | null = null;

  queueLabel(queue: string): string {
    if (this.queueLabels.has(queue)) return queue;
    if (this.queueLabels.size >= MAX_QUEUE_LABELS) return 'other';
    this.queueLabels.add(queue);
    return queue;
  }

  observeDispatch(queue: string, seconds: number): void {
    this.dispatchLatency.observe({ queue: this.queueLabel(queue) }, seconds);
  }

  observeStart(queue: string, seconds: number): void {
    this.startLatency.observe({ queue: this.queueLabel(queue) }, Math.max(0, seconds));
  }

  /** Queue statistics shared by the gauges of one scrape (they collect within milliseconds of each other). */
  private scrapeStats(db: Db): Promise<QueueStats[]> {
    if (!this.stats || Date.now() - this.stats.at > 1_000) {
      this.stats = { at: Date.now(), value: queueStats(db) };
      this.stats.value.catch(() => {
        this.stats = null;
      });
    }
    return this.stats.value;
  }

  constructor(db: Db) {
    const registry = this.registry;
    const metrics = this;
    this.dispatchLatency = new Histogram({
      name: 'airfleet_dispatch_latency_seconds',
      help: 'Time from entering the queue to being leased to a worker or submitted to a backend',
      labelNames: ['queue'],
      buckets: DISPATCH_BUCKETS,
      registers: [registry],
    });
    this.startLatency = new Histogram({
      name: 'airfleet_start_latency_seconds',
      help: 'Time from entering the queue to the task running (its attempt recorded as started)',
      labelNames: ['queue'],
      buckets: DISPATCH_BUCKETS,
      registers: [registry],
    });
    this.leaseLatency = new Histogram({
      name: 'airfleet_lease_transaction_seconds',
      help: 'Duration of one lease transaction',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
      registers: [registry],
    });
    this.pollPasses = new Counter({
      name: 'airfleet_poll_passes_total',
      help: 'Worker poll passes by outcome: leased; empty (a lease transaction that found nothing); skipped (nothing could have changed since the last pass)',
      labelNames: ['outcome'],
      registers: [registry],
    });
    this.submitted = new Counter({
      name: 'airfleet_workloads_submitted_total',
      help: 'Workloads accepted (new keys only)',
      labelNames: ['queue', 'backend'],
      registers: [registry],
    });
    this.finished = new Counter({
      name: 'airfleet_workloads_finished_total',
      help: 'Workloads that reached a final state',
      labelNames: ['queue', 'state', 'reason'],
      registers: [registry],
    });
    new Gauge({
      name: 'airfleet_queue_depth',
      help: 'Workloads per queue, backend and state (queued, pending, running)',
      labelNames: ['queue', 'backend', 'state'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const s of await metrics.scrapeStats(db)) {
          const queue = metrics.queueLabel(s.queue);
          this.inc({ queue, backend: s.backend, state: 'queued' }, s.queued);
          this.inc({ queue, backend: s.backend, state: 'pending' }, s.pending);
          this.inc({ queue, backend: s.backend, state: 'running' }, s.running);
        }
      },
    });
    new Gauge({
      name: 'airfleet_queue_slots',
      help: 'Pool slots per queue: queued plus in flight (the backlog the autoscaler reads)',
      labelNames: ['queue', 'backend', 'kind'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const s of await metrics.scrapeStats(db)) {
          const queue = metrics.queueLabel(s.queue);
          this.inc({ queue, backend: s.backend, kind: 'queued' }, s.queuedSlots);
          this.inc({ queue, backend: s.backend, kind: 'running' }, s.runningSlots);
        }
      },
    });
    new Gauge({
      name: 'airfleet_workers',
      help: 'Pull workers by state',
      labelNames: ['state'],
      registers: [registry],
      async collect() {
        const counts = new Map((await countWorkersByState(db)).map((r) => [r.state, r.n]));
        for (const state of WORKER_STATES) this.set({ state }, counts.get(state) ?? 0);
      },
    });
  }
}
