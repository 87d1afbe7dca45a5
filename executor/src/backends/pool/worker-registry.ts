import { isTerminal } from '../../domain/states.ts';
import type { Workload } from '../../domain/workload.ts';
import { ConflictError, NotFoundError } from '../../errors.ts';
import type { Queryable } from '../../store/db.ts';
import { hashSecret, newSecret, secretMatches } from '../../store/tokens.ts';
import {
  deleteGoneWorker,
  getWorker,
  type HeldWorkload,
  heartbeat,
  listWorkers,
  lockWorkerName,
  markWorkerLost,
  requestDrain,
  setMaintenance,
  setWorkerState,
  silentWorkers,
  updateWorkerConfig,
  type Worker,
  type WorkerMetrics,
  writeWorker,
} from '../../store/workers.ts';
import { lockAttempt, workloadsOfWorker } from '../../store/workloads.ts';
import type { PoolHost } from './pool-host.ts';

export interface WorkerView {
  queues: string[];
  concurrency: number;
  maintenance: boolean;
  maintenanceComment: string | null;
  state: Worker['state'];
  /** The worker is to drain and leave: set by its own SIGINT, or by an operator (`POST /v1/workers/:name/drain`). */
  draining: boolean;
}

/** An attempt the worker must stop, and why (the reason it will be recorded with). */
export interface StopOrder {
  workloadId: string;
  attempt: number;
  reason: string;
  message: string | null;
}

export interface HeartbeatResult {
  stop: StopOrder[];
  config: WorkerView;
}

export interface RunningEntry {
  workloadId: string;
  attempt: number;
}

export interface Registration {
  name: string;
  queues: string[];
  concurrency: number;
  labels: Record<string, string>;
  runtime: string;
  version: string;
  /**
   * The token this worker had before a restart (from its state file): lets it take its name back while the
   * service still believes the previous process alive, and keep its id.
   */
  previousToken?: string | undefined;
  /**
   * Attempts of the previous process whose end the worker recorded on disk and will report now: they are not
   * written off as lost.
   */
  resume?: RunningEntry[] | undefined;
}

/**
 * Who the pull workers are: registration (one live process per name), heartbeats with metrics and the
 * comparison of what a worker runs with what the service thinks it holds, administration (maintenance,
 * queues, concurrency), and writing off workers that went silent.
 */
export class WorkerRegistry {
  private readonly host: PoolHost;
  private readonly onForget: (workerId: string) => void;

  constructor(host: PoolHost, onForget: (workerId: string) => void) {
    this.host = host;
    this.onForget = onForget;
  }

  // ---------------------------------------------------------------- administration

  list(): Promise<Worker[]> {
    return listWorkers(this.host.db);
  }

  async get(idOrName: string): Promise<Worker> {
    const worker = await getWorker(this.host.db, idOrName);
    if (!worker) throw new NotFoundError('worker', idOrName);
    return worker;
  }

  async setMaintenance(idOrName: string, on: boolean, comment: string | null): Promise<Worker> {
    const worker = await setMaintenance(this.host.db, idOrName, on, comment);
    if (!worker) throw new NotFoundError('worker', idOrName);
    this.host.wakeWorker(worker.id);
    return this.get(worker.id);
  }

  async update(
    idOrName: string,
    change: { addQueues?: string[]; removeQueues?: string[]; concurrency?: number },
  ): Promise<Worker> {
    const worker = await updateWorkerConfig(this.host.db, idOrName, change);
    if (!worker) throw new NotFoundError('worker', idOrName);
    this.host.wakeWorker(worker.id);
    return this.get(worker.id);
  }

  /**
   * Asks a live worker to drain and leave: it takes no new leases from now on, lets its tasks finish (up to
   * its --drain-timeout) and deregisters, as on SIGINT. Its parked poll answers at once with the request.
   */
  async requestDrain(idOrName: string): Promise<Worker> {
    const worker = await requestDrain(this.host.db, idOrName);
    if (!worker) throw new NotFoundError('worker', idOrName);
    if (worker.state === 'lost' || worker.state === 'offline') {
      throw new ConflictError(
        `worker ${worker.name} is ${worker.state}: there is nothing to drain; forget it (DELETE /v1/workers/${worker.name}) to remove it from the list`,
        { state: worker.state },
      );
    }
    this.host.wakeWorker(worker.id);
    return this.get(worker.id);
  }

  /** Removes a gone (offline or lost) worker from the registry; a live one is refused, naming what to do. */
  async forgetGone(idOrName: string): Promise<void> {
    const worker = await getWorker(this.host.db, idOrName);
    if (!worker) throw new NotFoundError('worker', idOrName);
    const result = await deleteGoneWorker(this.host.db, worker.id);
    if (result.deleted) {
      this.forget(worker.id);
      this.host.logger.info({ worker: worker.name }, 'forgot a worker that was gone');
      return;
    }
    if (result.state === 'missing') throw new NotFoundError('worker', idOrName);
    throw new ConflictError(
      result.state === 'lost' || result.state === 'offline'
        ? `worker ${worker.name} still holds ${result.held} workload(s); try again once they are settled`
        : `worker ${worker.name} is ${result.state}, not gone: only offline or lost workers can be forgotten; ` +
            `drain it first (POST /v1/workers/${worker.name}/drain) and forget it once it is offline`,
      { state: result.state },
    );
  }

  // ---------------------------------------------------------------- registration

  /**
   * Registers a worker and hands it its own token (only a hash is kept). A name belongs to one live process:
   * registering under the name of a worker that still heartbeats is refused, unless the caller presents that
   * worker's own token (the same worker, restarted). A name whose worker is offline, lost or silent past the
   * heartbeat timeout (which means it has stopped its tasks itself) is taken over with a new id.
   */
  async register(input: Registration): Promise<{ worker: Worker; token: string; resumed: boolean }> {
    const secret = newSecret();
    const timeoutSeconds = this.host.settings.heartbeatTimeoutMs / 1000;
    const outcome = await this.host.db.tx(async (q) => {
      const previous = await lockWorkerName(q, input.name, timeoutSeconds);
      const proven =
        previous !== null &&
        input.previousToken !== undefined &&
        tokenOf(input.previousToken) !== null &&
        tokenOf(input.previousToken)!.id === previous.id.replaceAll('-', '') &&
        secretMatches(tokenOf(input.previousToken)!.secret, previous.tokenHash);
      const live = previous !== null && previous.state !== 'lost' && previous.state !== 'offline' && !previous.silent;
      if (live && !proven) {
        throw new ConflictError(
          `a worker named '${input.name}' is registered and heartbeating: give this worker another --name, or stop ` +
            `that one first (its name is free once it deregisters or misses heartbeats for ${timeoutSeconds} s)`,
          { field: 'name' },
        );
      }
      const keepId = proven && previous?.state !== 'lost' && previous?.state !== 'offline' ? previous!.id : null;
      const worker = await writeWorker(q, { ...input, tokenHash: hashSecret(secret) }, keepId);
      if (previous) {
        // The previous process is gone (or is this one, restarted): what it held and is not about to report
        // died with it, or never started.
        const keep = new Set((keepId ? (input.resume ?? []) : []).map((r) => `${r.workloadId}#${r.attempt}`));
        await this.settleHeld(q, previous.id, keepId ? 'worker restarted' : 'worker re-registered', keep);
      }
      return { worker, previousId: previous?.id ?? null, resumed: keepId !== null };
    });
    if (outcome.previousId) {
      this.forget(outcome.previousId);
      this.host.life.afterBulkChange();
    }
    this.host.logger.info(
      {
        worker: outcome.worker.name,
        queues: outcome.worker.queues,
        concurrency: outcome.worker.concurrency,
        resumed: outcome.resumed,
      },
      'worker registered',
    );
    return {
      worker: outcome.worker,
      token: `afw_${outcome.worker.id.replaceAll('-', '')}_${secret}`,
      resumed: outcome.resumed,
    };
  }

  // ---------------------------------------------------------------- heartbeats

  async heartbeat(
    workerId: string,
    input: { metrics?: WorkerMetrics | undefined; running: RunningEntry[]; draining?: boolean | undefined },
    /** When the heartbeat reached the service (ms since epoch); its processing may come later under load. */
    receivedAtMs = Date.now(),
  ): Promise<HeartbeatResult> {
    const beat = await heartbeat(this.host.db, workerId, {
      ...(input.metrics ? { metrics: input.metrics } : {}),
      ...(input.draining !== undefined ? { draining: input.draining } : {}),
    });
    if (!beat) throw new NotFoundError('worker', workerId);
    if (beat.worker.state === 'lost' || beat.worker.state === 'offline') throw goneError(beat.worker);
    await this.compareWithWorker(workerId, input.running, beat.held, receivedAtMs);
    return { stop: stopOrders(beat.held), config: viewOf(beat.worker) };
  }

  /**
   * Compares what the worker says it runs with what the service thinks it holds. A lease the worker never
   * acknowledged (its reply was lost) is requeued; a task the worker no longer knows about failed as lost.
   * Both only for leases older than the lease-acknowledgement timeout when the heartbeat arrived, so a
   * heartbeat sent before the lease reached the worker is not mistaken for a denial.
   */
  private async compareWithWorker(
    workerId: string,
    running: RunningEntry[],
    held: HeldWorkload[],
    receivedAtMs: number,
  ): Promise<void> {
    const known = new Set(running.map((r) => `${r.workloadId}#${r.attempt}`));
    let changed = false;
    for (const h of held) {
      if (known.has(`${h.id}#${h.attempt}`) || receivedAtMs - h.sinceMs < this.host.settings.leaseAckTimeoutMs)
        continue;
      const result = await this.host.life.failAttemptNow(
        h.id,
        h.attempt,
        'lost',
        h.state === 'running',
        `worker ${workerId} no longer reports this task`,
        { owner: workerId },
      );
      changed ||= result !== null;
    }
    if (changed) this.host.life.afterBulkChange();
  }

  // ---------------------------------------------------------------- leaving

  /** A worker leaving cleanly: it should hold nothing; whatever it still holds is settled as lost. */
  async deregister(workerId: string): Promise<void> {
    await this.host.db.tx(async (q) => {
      await this.settleHeld(q, workerId, 'worker went offline');
      await setWorkerState(q, workerId, 'offline');
    });
    this.forget(workerId);
    this.host.life.afterBulkChange();
  }

  /**
   * Reaper pass (leader only): a worker silent past the heartbeat timeout is lost, and so are its tasks. This
   * is safe to requeue from because a worker that cannot renew within the timeout stops its tasks itself
   * (docs/architecture.md, "Leases and fencing").
   */
  async reapSilent(): Promise<number> {
    const timeoutMs = this.host.settings.heartbeatTimeoutMs;
    let lost = 0;
    for (const workerId of await silentWorkers(this.host.db, timeoutMs / 1000)) {
      const written = await this.host.db.tx(async (q) => {
        if (!(await markWorkerLost(q, workerId, timeoutMs / 1000))) return false;
        await this.settleHeld(q, workerId, `no heartbeat for ${timeoutMs} ms`);
        return true;
      });
      if (!written) continue;
      lost++;
      this.forget(workerId);
      this.host.logger.warn({ workerId }, 'worker lost: no heartbeat within the timeout; its tasks were settled');
      this.host.life.afterBulkChange();
    }
    return lost;
  }

  /** Settles what a gone worker held: running tasks failed as lost, leases never started requeued. */
  private async settleHeld(q: Queryable, workerId: string, why: string, keep = new Set<string>()): Promise<void> {
    for (const w of await workloadsOfWorker(q, workerId)) {
      if (keep.has(`${w.id}#${w.attempt}`)) continue;
      const row = await lockAttempt(q, w.id, w.attempt);
      if (!row || isTerminal(row.state) || row.workerId !== workerId) continue;
      await this.host.life.failAttempt(q, row, 'lost', row.state === 'running', why);
    }
  }

  private forget(workerId: string): void {
    this.host.forgetWorkerToken(workerId);
    this.onForget(workerId);
  }
}

export function viewOf(worker: Worker): WorkerView {
  return {
    queues: worker.queues,
    concurrency: worker.concurrency,
    maintenance: worker.maintenance,
    maintenanceComment: worker.maintenanceComment,
    state: worker.state,
    draining: worker.draining,
  };
}

export function stopOrders(
  held: ReadonlyArray<Pick<HeldWorkload, 'id' | 'attempt' | 'stopReason' | 'stopMessage'>>,
): StopOrder[] {
  return held
    .filter((h) => h.stopReason !== null)
    .map((h) => ({ workloadId: h.id, attempt: h.attempt, reason: h.stopReason!, message: h.stopMessage }));
}

export function goneError(worker: Pick<Worker, 'name' | 'state'>): ConflictError {
  return new ConflictError(
    `worker ${worker.name} is ${worker.state}: its leases were taken back; register again to get new work`,
    { state: worker.state },
  );
}

function tokenOf(token: string): { id: string; secret: string } | null {
  const match = /^afw_([0-9a-f]{32})_([A-Za-z0-9_-]{20,100})$/.exec(token);
  return match ? { id: match[1]!, secret: match[2]! } : null;
}

/** What a worker's reply carries of a workload it leased (secrets added by the lease protocol). */
export type LeasedWorkload = Workload & { secretEnv: Record<string, string> };
