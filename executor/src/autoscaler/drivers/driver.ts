import type { Worker } from '../../store/workers.ts';

/**
 * What a pool's capacity runs on (a Docker Swarm service, a Nomad job, an Auto Scaling group), behind one
 * interface. A driver only carries out: the autoscaler decides how many, and which workers leave.
 */
export interface PoolDriver {
  readonly kind: string;
  /** The capacity the platform is asked to keep now (service replicas, group count), and how many run. */
  observe(): Promise<{ target: number; running: number }>;
  /** Raises (or sets) the capacity to `n` workers. Never used to lower it: see {@link remove}. */
  scaleTo(n: number): Promise<void>;
  /**
   * Removes exactly these workers, which have drained (in maintenance, holding nothing), and lowers the
   * capacity by as many; no other worker may be stopped. Resolves once they are gone.
   */
  remove(workers: readonly Worker[]): Promise<void>;
  /**
   * Who scales in: `drain` (the default), the autoscaler, through maintenance, drain and {@link remove};
   * `platform`, the platform itself (an Auto Scaling group's target tracking, with busy workers protected).
   */
  readonly scaleIn?: 'drain' | 'platform';
  /** Called every pass with the pool's backlog, for a platform that scales on a metric of its own. */
  publish?(backlog: { queuedSlots: number; runningSlots: number; queue: string }): Promise<void>;
  /** Orders idle candidates so that the ones the platform removes most cleanly come first. */
  rankForRemoval?(workers: readonly Worker[]): Promise<Worker[]>;
  close?(): Promise<void>;
}

/**
 * How a worker is known to belong to a pool: its `airfleet.pool` label (the Swarm service sets it through
 * AIRFLEET_WORKER_LABELS; other platforms pass `--label airfleet.pool=<pool>`).
 */
export const POOL_LABEL = 'airfleet.pool';

export function inPool(worker: Pick<Worker, 'labels'>, pool: string): boolean {
  return worker.labels[POOL_LABEL] === pool;
}
