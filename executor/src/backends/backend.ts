import type { Logger } from 'pino';
import type { FailureReason } from '../domain/states.ts';
import type { BackendName, Workload } from '../domain/workload.ts';
import type { LogStream } from '../store/logs.ts';

/**
 * The one interface every backend implements (docs/architecture.md, "Backends"). The service owns the state
 * machine; a backend only starts, watches, stops and finds again the jobs it runs, and tells the service what
 * it saw through a {@link BackendHost}. Two ways to get work:
 *
 * - `push` backends (local, Nomad, Batch): the dispatcher claims queued workloads in batches (SKIP LOCKED,
 *   woken by NOTIFY), moves them to `submitting` under this instance's name, and calls {@link Backend.submit}.
 * - `pull` backends (the worker pool): workers lease work themselves; `submit` only offers it.
 *
 * Ownership: every push attempt belongs to the service instance that claimed it (`claimed_by`). That instance
 * submits it, watches it and stops it. When an instance dies, the leader instance reconciles its attempts and
 * adopts those the backend still has (see {@link Backend.reconcile}); from then on the adopter watches them.
 */
export interface Backend {
  readonly name: BackendName;
  readonly mode: 'push' | 'pull';
  /** Begins watching (event streams, status loops...). Called once, before the first {@link reconcile}. */
  start(host: BackendHost): Promise<void>;
  /**
   * Starts one attempt. Push backends return the job's reference (stored as `backendRef`); the job's name or
   * tags must carry the workload id and attempt so that {@link reconcile} can find it after a crash, and
   * should be derived from them (a second submit of the same attempt then finds or replaces the same job
   * rather than making a second one, where the backend allows it). Secrets (`context.secretEnv`) must reach
   * the task without appearing in anything a reader of the backend's API can see (job specs, DescribeJobs).
   * Throws {@link SubmitError} when the job could not be created.
   */
  submit(workload: Workload, attempt: number, context: SubmitContext): Promise<SubmitResult>;
  /**
   * Asks the backend to stop an attempt. Resolving means the backend accepted the stop (the job is being
   * stopped or is already gone); throwing means it must be asked again (the service retries until the
   * attempt's end is reported). The watcher then reports how the attempt ended, as for any other end: the
   * service decides the final state from the stop's reason, not the backend.
   */
  cancel(target: AttemptRef): Promise<void>;
  /** Copies the attempt's logs from the backend into the log store (before the job is purged). */
  fetchLogs(target: AttemptRef): Promise<void>;
  /**
   * Says what became of attempts the database has in flight but nobody watches: at start-up (this instance's
   * own, from before a crash) and periodically on the leader (those of instances that died). Attached
   * attempts are watched by this instance from then on; their outcome arrives through the host.
   *
   * `absent` must mean "no job was ever made for this attempt": reporting `absent` for a job that exists
   * makes a second job. A backend whose listing is eventually consistent answers `pending` (decide later)
   * for an attempt whose claim is younger than its grace period ({@link InFlightAttempt.claimedAt}).
   */
  reconcile(inFlight: InFlightAttempt[]): Promise<ReconcileVerdict[]>;
  /**
   * How many more attempts the backend takes now (for push backends with a concurrency or rate limit);
   * the dispatcher claims at most this many. Omitted: no limit beyond the dispatcher's batch size.
   */
  freeCapacity?(): number;
  close(): Promise<void>;
}

export interface SubmitContext {
  /**
   * The attempt's secret environment (`secretEnv`), decrypted: deliver it to the task only, never into a job
   * spec, tag, command line or log.
   */
  secretEnv: Record<string, string>;
  /** Aborted when the instance must stop submitting (it is stopping, or lost its database heartbeat). */
  signal: AbortSignal;
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
  /** When the attempt was claimed for submission (ms since epoch): for grace periods of eventual listings. */
  claimedAt: number;
}

/**
 * What reconcile found for one in-flight attempt:
 * - `attached`: the job exists and is watched again; its outcome arrives through the host as usual. `ref`
 *   is the job's reference when the database may not have it yet (a crash between submit and record).
 * - `absent`: no job was ever made (a `submitting` attempt whose submit never went out): queued again.
 * - `lost`: it existed but can no longer be observed (killed, purged): the attempt fails as `lost`.
 * - `pending`: cannot tell yet (an eventually consistent listing, a backend that is unreachable): asked
 *   again on the next pass.
 */
export type ReconcileVerdict =
  | { workloadId: string; attempt: number; verdict: 'attached'; ref: string | null }
  | { workloadId: string; attempt: number; verdict: 'absent' }
  | { workloadId: string; attempt: number; verdict: 'lost'; started: boolean; message: string }
  | { workloadId: string; attempt: number; verdict: 'pending'; message?: string };

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
  /** This service instance's id (the `claimed_by` of the attempts it owns). */
  readonly instanceId: string;
  /** Applies a watcher's observation to the state machine (fenced, idempotent). */
  update(update: BackendUpdate): Promise<void>;
  /**
   * Applies many observations at once (a status loop's batch, an event stream's burst): one round trip for
   * the fencing read, then one statement per change. Same semantics as {@link update} for each.
   */
  updateMany(updates: readonly BackendUpdate[]): Promise<void>;
  /**
   * Stores output of an attempt at `offset` of its stream and returns the stream's stored length. Storing
   * the same bytes at the same offset again is a no-op; anything else at an offset below the stored length
   * is refused with {@link LogOffsetError} carrying the stored length to resume from.
   */
  appendLog(workloadId: string, attempt: number, stream: LogStream, offset: number, data: Buffer): Promise<number>;
  /** How many bytes of the stream are stored (where a re-attached watcher resumes copying). */
  logLength(workloadId: string, attempt: number, stream: LogStream): Promise<number>;
  /**
   * The attempts of this backend that this instance owns and that have not ended: what a status loop asks
   * the backend about (e.g. 100 jobs per DescribeJobs call). One query, ordered by claim time.
   */
  inFlight(): Promise<InFlightAttempt[]>;
  /**
   * A durable per-backend cursor (e.g. the Nomad event index to resume the stream from), shared by the
   * instances: `get` returns the last value `set` stored, or null.
   */
  readonly cursor: {
    get(name: string): Promise<string | null>;
    set(name: string, value: string): Promise<void>;
  };
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

/** A log chunk that does not continue its stream: resume from `storedLength` (see store/logs.ts). */
export { LogOffsetError } from '../errors.ts';
