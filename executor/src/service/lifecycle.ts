import type { Logger } from 'pino';
import type { BackendUpdate } from '../backends/backend.ts';
import type { ServiceConfig } from '../config.ts';
import { decideAfterFailure, type FailureReason, isTerminal } from '../domain/states.ts';
import type { Workload } from '../domain/workload.ts';
import { WaiterSet } from '../lib/waiters.ts';
import type { Db, Queryable } from '../store/db.ts';
import { finishAttempt, lockAttempt, markRunning, type Outcome, requeueAsNewAttempt } from '../store/workloads.ts';
import type { Feed } from './feed.ts';
import type { ServiceMetrics } from './metrics.ts';
import type { Signals } from './signals.ts';

/**
 * Where a workload's attempt changes state after it was handed out, whichever backend runs it, and what is
 * woken after each change. Backends, the worker protocol, the dispatcher and the reaper all go through here,
 * so the failure taxonomy, infrastructure retries, stop requests and fencing are decided in one place
 * (docs/architecture.md, "One state machine").
 *
 * An attempt's end is decided on its row locked in the same transaction (store/workloads.ts lockAttempt):
 * never from a copy read before, which a cancel or a timeout may have changed meanwhile.
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
   * Applies an observation about an attempt, fenced by attempt and owner (the worker holding it, or null for
   * push backends). Returns the changed workload, or null when the row was not in a state the update applies
   * to (already finished, moved on to another attempt, held by another worker).
   */
  async apply(update: BackendUpdate, owner: string | null): Promise<Workload | null> {
    let result: Workload | null;
    if (update.state === 'running') {
      result = await markRunning(this.db, update.workloadId, update.attempt, owner);
    } else if (update.state === 'succeeded') {
      // A natural success wins over any stop on its way. One statement, no transaction: the hot path of
      // every task that ends.
      result = await finishAttempt(this.db, update.workloadId, update.attempt, owner, {
        state: 'succeeded',
        exitCode: update.exitCode,
      });
    } else {
      result = await this.db.tx(async (q) => {
        const row = await lockAttempt(q, update.workloadId, update.attempt);
        if (!row || isTerminal(row.state) || row.workerId !== owner) return null;
        return this.settleEnd(q, row, update);
      });
    }
    if (result) this.afterChange(result);
    return result;
  }

  /**
   * The end of an attempt that did not succeed, on its locked row. A stop the service asked for decides the
   * reason (the backend only saw "stopped"): a cancel ends it `cancelled`; a pending timeout of a task that
   * never started is an infrastructure failure, retried as a new attempt; a run timeout fails it.
   */
  settleEnd(
    q: Queryable,
    row: Workload,
    update: Extract<BackendUpdate, { state: 'failed' | 'cancelled' }>,
  ): Promise<Workload | null> {
    const exitCode = update.exitCode ?? null;
    const started = update.state === 'failed' ? update.started : row.state === 'running';
    if (row.cancelRequested || row.stopReason === 'cancelled') {
      return finishAttempt(q, row.id, row.attempt, row.workerId, {
        state: 'cancelled',
        reason: 'cancelled',
        exitCode,
        message: update.message ?? row.stopMessage ?? 'cancelled by request',
      });
    }
    if (row.stopReason) {
      return this.failAttempt(q, row, row.stopReason, started, row.stopMessage ?? row.stopReason, exitCode);
    }
    if (update.state === 'cancelled') {
      // Stopped by someone else than the service (an operator stopping the job in the backend).
      return finishAttempt(q, row.id, row.attempt, row.workerId, {
        state: 'cancelled',
        reason: 'cancelled',
        exitCode,
        message: update.message ?? 'stopped outside airfleet',
      });
    }
    return this.failAttempt(q, row, update.reason, update.started, update.message ?? null, exitCode);
  }

  /**
   * Ends an attempt as failed, or requeues it as a new attempt when the failure happened before the task
   * started and the workload has infrastructure retries left. `row` must be locked by the caller's
   * transaction (lockAttempt). `countsAsRetry` false: the attempt was handed back unstarted by a worker that
   * is stopping, which is no failure of the workload's.
   */
  async failAttempt(
    q: Queryable,
    row: Workload,
    reason: FailureReason,
    started: boolean,
    message: string | null,
    exitCode?: number | null,
    countsAsRetry = true,
  ): Promise<Workload | null> {
    if (row.cancelRequested) {
      return finishAttempt(q, row.id, row.attempt, row.workerId, {
        state: 'cancelled',
        reason: 'cancelled',
        exitCode: exitCode ?? null,
        message: row.stopMessage ?? 'cancelled by request',
      });
    }
    const neverRan = row.state === 'submitting' || row.state === 'pending';
    // Handed back unstarted by the worker holding it: always another attempt, whatever retries are left, and
    // even from `running` (its start confirmation never reached it: the `handBack` edge, domain/states.ts).
    const retry =
      !started && !countsAsRetry
        ? true
        : decideAfterFailure({
            reason,
            started: started || !neverRan,
            attempt: row.attempt,
            infraRetries: row.infraRetries,
            maxInfraRetries: row.maxInfraRetries,
          }).kind === 'retry';
    if (retry) {
      this.logger.info(
        { workload: row.id, attempt: row.attempt, reason },
        'attempt ended before its task started: retrying as a new attempt',
      );
      const requeued = await requeueAsNewAttempt(q, row.id, row.attempt, reason, message ?? reason, countsAsRetry);
      if (requeued) return requeued;
    }
    const outcome: Outcome = { state: 'failed', reason, exitCode: exitCode ?? null, message };
    return finishAttempt(q, row.id, row.attempt, row.workerId, outcome);
  }

  /** Locks the attempt and fails it (see {@link failAttempt}) in one transaction; null when it moved on. */
  async failAttemptNow(
    id: string,
    attempt: number,
    reason: FailureReason,
    started: boolean,
    message: string | null,
    options: { exitCode?: number | null; owner?: string | null; countsAsRetry?: boolean } = {},
  ): Promise<Workload | null> {
    const result = await this.db.tx(async (q) => {
      const row = await lockAttempt(q, id, attempt);
      if (!row || isTerminal(row.state)) return null;
      if (options.owner !== undefined && row.workerId !== options.owner) return null;
      return this.failAttempt(q, row, reason, started, message, options.exitCode, options.countsAsRetry ?? true);
    });
    if (result) this.afterChange(result);
    return result;
  }

  /** After one workload changed: the feed, its worker, log followers and (if requeued) its queue. */
  afterChange(w: Workload): void {
    this.feed.poke();
    if (w.workerId && isTerminal(w.state)) this.signals.emit({ kind: 'slots', workerId: w.workerId });
    this.signals.emit({ kind: 'log', workloadId: w.id }); // wakes log followers here and in peers
    if (isTerminal(w.state))
      this.metrics.finished.inc({ queue: this.metrics.queueLabel(w.queue), state: w.state, reason: w.reason ?? '' });
    else if (w.state === 'running' && w.startedAt)
      this.metrics.observeStart(w.queue, (Date.parse(w.startedAt) - Date.parse(w.queuedAt)) / 1000);
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
