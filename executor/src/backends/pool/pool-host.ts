import type { FailureReason } from '../../domain/states.ts';
import type { Workload } from '../../domain/workload.ts';
import type { WaiterSet } from '../../lib/waiters.ts';
import type { Db, Queryable } from '../../store/db.ts';
import type { BackendHost, BackendUpdate } from '../backend.ts';

/**
 * What the pull-worker pool needs of the service beyond any backend's {@link BackendHost}: the pool is the
 * one backend whose watcher is the service's own HTTP API (the worker protocol), so it reads and writes
 * workload rows itself and parks long-polls. It still reaches the service only through this interface.
 */
export interface PoolHost extends BackendHost {
  readonly db: Db;
  readonly settings: {
    heartbeatIntervalMs: number;
    heartbeatTimeoutMs: number;
    leaseAckTimeoutMs: number;
  };
  /** Parked worker polls, by `q:<queue>`, `w:<workerId>` (for the worker itself) and `s:<workerId>` (slots). */
  readonly queueWaiters: WaiterSet<string>;
  readonly metrics: {
    pollPasses: { inc(labels: { outcome: 'leased' | 'empty' | 'skipped' }): void };
    leaseLatency: { observe(seconds: number): void };
    observeDispatch(queue: string, seconds: number): void;
  };
  /** The state machine (service/lifecycle.ts). */
  readonly life: {
    apply(update: BackendUpdate, owner: string | null): Promise<Workload | null>;
    failAttempt(
      q: Queryable,
      row: Workload,
      reason: FailureReason,
      started: boolean,
      message: string | null,
      exitCode?: number | null,
      countsAsRetry?: boolean,
    ): Promise<Workload | null>;
    failAttemptNow(
      id: string,
      attempt: number,
      reason: FailureReason,
      started: boolean,
      message: string | null,
      options?: { exitCode?: number | null; owner?: string | null; countsAsRetry?: boolean },
    ): Promise<Workload | null>;
    afterChange(w: Workload): void;
    afterBulkChange(): void;
  };
  /** Wakes something: a worker's own poll, or the change feed's numbering. */
  wakeWorker(workerId: string): void;
  /** Wakes polls (here and on peer instances) that could take `count` workloads queued on `queue`. */
  wakeQueue(queue: string, count: number): void;
  pokeFeed(): void;
  /** Wakes log followers of a workload (here and on peer instances). */
  logWritten(workloadId: string): void;
  /** Drops the cached credentials of a worker whose token no longer holds. */
  forgetWorkerToken(workerId: string): void;
  /** The instance is stopping: hand out no more leases (its peers, or its successor, will). */
  stopping(): boolean;
  /** Opens a workload's sealed secret environment, for the worker that leased it (no database round trip). */
  openSecrets(workloadId: string, sealed: Buffer | null): Record<string, string>;
}
