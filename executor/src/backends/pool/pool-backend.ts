import type { Workload } from '../../domain/workload.ts';
import { getWorkload } from '../../store/workloads.ts';
import type {
  AttemptRef,
  Backend,
  BackendHost,
  InFlightAttempt,
  ReconcileVerdict,
  SubmitContext,
  SubmitResult,
} from '../backend.ts';
import { LeaseProtocol } from './lease-protocol.ts';
import type { PoolHost } from './pool-host.ts';
import { WorkerRegistry } from './worker-registry.ts';

/**
 * The pull-worker pool (the Edge executor's model, improved). Workers register, heartbeat and long-poll for
 * leases that fit their free slots; their reports are this backend's watcher. Nothing is pushed: the
 * dispatcher leaves `pool` workloads to the polls, which claim them with SKIP LOCKED in the poll's own
 * transaction. Two parts: {@link WorkerRegistry} (who the workers are) and {@link LeaseProtocol} (what they
 * run).
 */
export class PoolBackend implements Backend {
  readonly name = 'pool' as const;
  readonly mode = 'pull' as const;
  readonly workers: WorkerRegistry;
  readonly leases: LeaseProtocol;
  private readonly host: PoolHost;

  constructor(host: PoolHost) {
    this.host = host;
    this.leases = new LeaseProtocol(host);
    this.workers = new WorkerRegistry(host, (workerId) => this.leases.forget(workerId));
  }

  async start(_host: BackendHost): Promise<void> {
    // Reports arrive through the worker protocol; nothing to subscribe to.
  }

  /** Pull mode: a submitted workload is only offered; the first fitting worker poll leases it. */
  async submit(_workload: Workload, _attempt: number, _context: SubmitContext): Promise<SubmitResult> {
    return { ref: null };
  }

  /**
   * The stop is recorded on the row; the worker holding the attempt finds it in its next poll or heartbeat
   * answer (and every one after, until it reports the end), woken now.
   */
  async cancel(target: AttemptRef): Promise<void> {
    const w = await getWorkload(this.host.db, target.workloadId);
    if (w?.workerId && w.attempt === target.attempt) this.host.wakeWorker(w.workerId);
  }

  /** Workers upload their logs as the task runs: there is nothing left to copy. */
  async fetchLogs(_target: AttemptRef): Promise<void> {}

  /**
   * Pool attempts are owned by workers, not by service instances: the workers' heartbeats say what they run,
   * and a worker that goes silent is written off by the reaper. Nothing to find again here.
   */
  async reconcile(inFlight: InFlightAttempt[]): Promise<ReconcileVerdict[]> {
    return inFlight.map((a) => ({ workloadId: a.workloadId, attempt: a.attempt, verdict: 'attached', ref: null }));
  }

  async close(): Promise<void> {}
}
