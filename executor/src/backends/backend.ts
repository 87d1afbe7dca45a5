import type { Logger } from 'pino';
import type { FailureReason } from '../domain/states.ts';
import type { BackendName, Workload } from '../domain/workload.ts';
import type { LogStream } from '../store/logs.ts';

/**
 * The one interface every backend implements (DESIGN.md, "Backends"). The service owns the state machine;
 * a backend only starts, watches, stops and finds again the jobs it runs, and tells the service what it
 * saw through a {@link BackendHost}. Two ways to get work:
 *
 * - `push` backends (local, Nomad, Batch): the dispatcher claims queued workloads in batches (SKIP LOCKED,
 *   woken by NOTIFY), moves them to `submitting`, and calls {@link Backend.submit}.
 * - `pull` backends (the worker pool): workers lease work themselves; `submit` only offers it.
 */
export interface Backend {
  readonly name: BackendName;
  readonly mode: 'push' | 'pull';
  /** Begins watching (event streams, worker reports...). Called once, before {@link reconcile}. */
  start(host: BackendHost): Promise<void>;
  /**
   * Starts one attempt. Push backends return the job's reference (stored as `backendRef`); the job's name or
   * tags must carry the workload id and attempt so that {@link reconcile} can find it after a crash. Throws
   * {@link SubmitError} when the job could not be created.
   */
  submit(workload: Workload, attempt: number): Promise<SubmitResult>;
  /** Stops an attempt. The watcher then reports how it ended (normally `cancelled`). */
  cancel(target: AttemptRef): Promise<void>;
  /** Copies the attempt's logs from the backend into the log store (before the job is purged). */
  fetchLogs(target: AttemptRef): Promise<void>;
  /**
   * At start-up, after {@link start} and before the dispatcher runs: looks for every attempt the database
   * says is in flight on this backend and says what became of it, so nothing is submitted twice and nothing
   * is lost. Attached attempts are watched from then on; their outcome arrives through the host.
   */
  reconcile(inFlight: InFlightAttempt[]): Promise<ReconcileVerdict[]>;
  /**
   * How many more attempts the backend takes now (for push backends with a concurrency or rate limit);
   * the dispatcher claims at most this many. Omitted: no limit beyond the dispatcher's batch size.
   */
  freeCapacity?(): number;
  close(): Promise<void>;
}

export interface SubmitResult {
  /** The backend's handle on the job (Nomad job id, Batch job id, local run id); null for pull backends. */
  ref: string | null;
}

export interface AttemptRef {
  workloadId: string;
  attempt: number;
  ref: string | null;
}

export interface InFlightAttempt extends AttemptRef {
  state: 'submitting' | 'pending' | 'running';
}

/**
 * What reconcile found for one in-flight attempt:
 * - `attached`: the job exists and is watched again; its outcome arrives through the host as usual.
 * - `absent`: no trace of a job (a `submitting` attempt whose submit never went out): safe to queue again.
 * - `lost`: it existed but can no longer be observed (killed, purged): the attempt fails as `lost`.
 */
export type ReconcileVerdict =
  | { workloadId: string; attempt: number; verdict: 'attached'; ref: string | null }
  | { workloadId: string; attempt: number; verdict: 'absent' }
  | { workloadId: string; attempt: number; verdict: 'lost'; started: boolean; message: string };

/** A state change seen by a backend's watcher. Fenced by attempt: reports about older attempts are dropped. */
export type BackendUpdate =
  | { workloadId: string; attempt: number; state: 'running' }
  | { workloadId: string; attempt: number; state: 'succeeded'; exitCode: number }
  | {
      workloadId: string;
      attempt: number;
      state: 'failed';
      reason: FailureReason;
      /** Whether the task's own code started: failures before the start may be retried by the service. */
      started: boolean;
      exitCode?: number | null;
      message?: string;
    }
  | { workloadId: string; attempt: number; state: 'cancelled'; exitCode?: number | null; message?: string };

/** What the service offers its backends. */
export interface BackendHost {
  readonly logger: Logger;
  /** Applies a watcher's observation to the state machine (fenced, idempotent). */
  update(update: BackendUpdate): Promise<void>;
  /** Stores output of an attempt at `offset` of its stream; storing the same offset again is a no-op. */
  appendLog(workloadId: string, attempt: number, stream: LogStream, offset: number, data: Buffer): Promise<void>;
  /** How many bytes of the stream are stored (where a re-attached watcher resumes copying). */
  logLength(workloadId: string, attempt: number, stream: LogStream): Promise<number>;
}

/** The backend could not create the job. `submit_error` failures happen before start, so they may be retried. */
export class SubmitError extends Error {
  override name = 'SubmitError';
  readonly reason: FailureReason;
  constructor(message: string, reason: FailureReason = 'submit_error') {
    super(message);
    this.reason = reason;
  }
}
