import type { Logger } from 'pino';
import type { BackendUpdate } from '../backends/backend.ts';
import type { ServiceConfig } from '../config.ts';
import { decideAfterFailure, type FailureReason, isTerminal } from '../domain/states.ts';
import type { Workload } from '../domain/workload.ts';
import type { Db, Queryable } from '../store/db.ts';
import { finishAttempt, markRunning, type Outcome, requeueAsNewAttempt } from '../store/workloads.ts';
import type { Feed } from './feed.ts';
import type { ServiceMetrics } from './metrics.ts';
import type { Signals } from './signals.ts';
import { WaiterSet } from './waiters.ts';

/**
 * Where a workload's state changes after it was submitted, whichever backend runs it, and what is woken
 * after each change. Backends and the dispatcher go through here, so the failure taxonomy, infrastructure
 * retries and fencing are decided in one place (DESIGN.md: "one core state machine for every backend").
 */
export class Lifecycle {
  readonly db: Db;
  readonly config: ServiceConfig;
  readonly logger: Logger;
  readonly metrics: ServiceMetrics;
  readonly feed: Feed;
  readonly signals: Signals;
  /** Parked worker polls, by `q:<queue>`, `w:<workerId>` (for the worker itself) and `s:<workerId>` (slots). */
  readonly queueWaiters = new WaiterSet<string>({ remember: true });
  /** Parked log followers, by workload id. */
  readonly logWaiters = new WaiterSet<string>();

  constructor(deps: {
    db: Db;
    config: ServiceConfig;
    logger: Logger;
    metrics: ServiceMetrics;
    feed: Feed;
    signals: Signals;
  }) {
    this.db = deps.db;
    this.config = deps.config;
    this.logger = deps.logger;
    this.metrics = deps.metrics;
    this.feed = deps.feed;
    this.signals = deps.signals;
  }

  /**
   * Applies an update about `current`'s attempt, fenced by attempt and owner (the worker holding it, or
   * null for push backends). Returns the changed workload, or null when the row was not in a state the
   * update applies to (already finished, moved on to another attempt).
   */
  async apply(current: Workload, update: BackendUpdate, owner: string | null): Promise<Workload | null> {
    let result: Workload | null;
    if (update.state === 'running') {
      result = await markRunning(this.db, current.id, update.attempt, owner);
    } else if (update.state === 'failed') {
      result = await this.db.tx((q) =>
        this.failAttempt(q, current, update.reason, update.started, update.message ?? null, update.exitCode),
      );
    } else {
      // One statement, so no transaction around it: the hot path of every task that ends.
      const outcome: Outcome =
        update.state === 'succeeded'
          ? { state: 'succeeded', exitCode: update.exitCode }
          : {
              state: 'cancelled',
              reason: 'cancelled',
              exitCode: update.exitCode ?? null,
              message: update.message ?? null,
            };
      result = await finishAttempt(this.db, current.id, update.attempt, owner, outcome);
    }
    if (result) this.afterChange(result);
    return result;
  }

  /**
   * Ends an attempt as failed, or requeues it as a new attempt when the failure happened before the task
   * started and the workload has infrastructure retries left.
   */
  async failAttempt(
    q: Queryable,
    w: Workload,
    reason: FailureReason,
    started: boolean,
    message: string | null,
    exitCode?: number | null,
  ): Promise<Workload | null> {
    const decision = decideAfterFailure({
      reason,
      started,
      attempt: w.attempt,
      infraRetries: w.infraRetries,
      maxInfraRetries: w.maxInfraRetries,
    });
    if (decision.kind === 'retry' && !w.cancelRequested) {
      this.logger.info(
        { workload: w.id, attempt: w.attempt, reason },
        'failure before start: retrying as a new attempt',
      );
      return requeueAsNewAttempt(q, w.id, w.attempt, reason, message ?? reason);
    }
    const outcome: Outcome = w.cancelRequested
      ? { state: 'cancelled', reason: 'cancelled', message }
      : { state: 'failed', reason, exitCode: exitCode ?? null, message };
    return finishAttempt(q, w.id, w.attempt, w.workerId, outcome);
  }

  /** After one workload changed: the feed, its worker, log followers and (if requeued) its queue. */
  afterChange(w: Workload): void {
    this.feed.poke();
    if (w.workerId && isTerminal(w.state)) this.signals.emit({ kind: 'slots', workerId: w.workerId });
    this.signals.emit({ kind: 'log', workloadId: w.id }); // wakes log followers here and in peers
    if (isTerminal(w.state)) this.metrics.finished.inc({ queue: w.queue, state: w.state, reason: w.reason ?? '' });
    if (w.state === 'queued') this.signals.emit({ kind: 'queue', queue: w.queue, backend: w.backend, count: 1 });
  }

  /** After changes to many workloads at once: wake everything that might care. */
  afterBulkChange(): void {
    this.feed.poke();
    this.queueWaiters.wakeAll();
    this.logWaiters.wakeAll();
    this.signals.emit({ kind: 'dispatch' });
  }
}
