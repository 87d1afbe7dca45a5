import { pickLeases } from '../../domain/slots.ts';
import { type FailureReason, isTerminal } from '../../domain/states.ts';
import type { Workload } from '../../domain/workload.ts';
import { ConflictError, NotFoundError } from '../../errors.ts';
import type { Lifecycle } from '../../service/lifecycle.ts';
import type { Queryable } from '../../store/db.ts';
import { appendLogChunk, type LogStream } from '../../store/logs.ts';
import { hashSecret, newSecret } from '../../store/tokens.ts';
import {
  forgiveSilenceAfterRestart,
  getWorker,
  type HeldWorkload,
  heartbeat,
  listWorkers,
  lockWorkerForPoll,
  setMaintenance,
  setWorkerState,
  silentWorkers,
  updateWorkerConfig,
  upsertWorker,
  type Worker,
  type WorkerMetrics,
} from '../../store/workers.ts';
import {
  getWorkload,
  hasQueuedBiggerThan,
  lockLeaseCandidates,
  markLeased,
  workloadsOfWorker,
} from '../../store/workloads.ts';
import type {
  AttemptRef,
  Backend,
  BackendHost,
  BackendUpdate,
  InFlightAttempt,
  ReconcileVerdict,
  SubmitResult,
} from '../backend.ts';

export interface WorkerView {
  queues: string[];
  concurrency: number;
  maintenance: boolean;
  maintenanceComment: string | null;
  state: Worker['state'];
}

export interface PollResult {
  leases: Workload[];
  /** Workloads this worker runs that must be stopped (cancelled by a user). */
  cancel: Array<{ workloadId: string; attempt: number }>;
  config: WorkerView;
}

export interface RunningEntry {
  workloadId: string;
  attempt: number;
}

/** A worker's report, as it arrives over HTTP (optional fields filled in with defaults here). */
export interface Report {
  workloadId: string;
  attempt: number;
  state: 'running' | 'succeeded' | 'failed' | 'cancelled';
  exitCode?: number | null | undefined;
  reason?: FailureReason | undefined;
  message?: string | undefined;
  /** Whether the task's own process started (false: it failed before, e.g. image pull). */
  started?: boolean | undefined;
}

/**
 * The pull-worker pool (the Edge executor's model, improved). Workers register, heartbeat and long-poll for
 * leases that fit their free slots; their reports are this backend's watcher. Nothing is pushed: the
 * dispatcher leaves `pool` workloads to the polls, which claim them with SKIP LOCKED in the poll's own
 * transaction.
 */
export class PoolBackend implements Backend {
  readonly name = 'pool' as const;
  readonly mode = 'pull' as const;
  private readonly life: Lifecycle;
  /** Drops cached credentials of a worker whose token no longer holds (re-registered, lost, offline). */
  private readonly forgetWorkerToken: (workerId: string) => void;
  /** Per worker, its last lease pass on this instance that left nothing it could take (see `poll`). */
  private readonly exhaustedPasses = new Map<string, ExhaustedPass>();

  constructor(life: Lifecycle, forgetWorkerToken: (workerId: string) => void) {
    this.life = life;
    this.forgetWorkerToken = forgetWorkerToken;
  }

  // ---------------------------------------------------------------- Backend

  async start(_host: BackendHost): Promise<void> {
    // Reports arrive through the worker protocol below; nothing to subscribe to.
  }

  /** Pull mode: a submitted workload is only offered; the first fitting worker poll leases it. */
  async submit(workload: Workload): Promise<SubmitResult> {
    this.life.signals.emit({ kind: 'queue', queue: workload.queue, backend: this.name, count: 1 });
    return { ref: null };
  }

  /** The worker holding the attempt learns of the cancellation on its next poll or heartbeat, woken now. */
  async cancel(target: AttemptRef): Promise<void> {
    const w = await getWorkload(this.life.db, target.workloadId);
    if (w?.workerId && w.attempt === target.attempt) this.life.signals.emit({ kind: 'worker', workerId: w.workerId });
  }

  /** Workers upload their logs as the task runs: there is nothing left to copy. */
  async fetchLogs(_target: AttemptRef): Promise<void> {}

  /**
   * After a restart every lease is still held by its worker; the workers' next heartbeats say what they
   * run. The downtime must not count as silence, or every worker would be written off at once.
   */
  async reconcile(inFlight: InFlightAttempt[]): Promise<ReconcileVerdict[]> {
    await forgiveSilenceAfterRestart(this.life.db);
    return inFlight.map((a) => ({ workloadId: a.workloadId, attempt: a.attempt, verdict: 'attached', ref: null }));
  }

  async close(): Promise<void> {}

  // ---------------------------------------------------------------- workers (admin side)

  listWorkers(): Promise<Worker[]> {
    return listWorkers(this.life.db);
  }

  async getWorker(idOrName: string): Promise<Worker> {
    const worker = await getWorker(this.life.db, idOrName);
    if (!worker) throw new NotFoundError('worker', idOrName);
    return worker;
  }

  async setMaintenance(idOrName: string, on: boolean, comment: string | null): Promise<Worker> {
    const worker = await setMaintenance(this.life.db, idOrName, on, comment);
    if (!worker) throw new NotFoundError('worker', idOrName);
    this.life.signals.emit({ kind: 'worker', workerId: worker.id });
    return this.getWorker(worker.id);
  }

  async updateWorker(
    idOrName: string,
    change: { addQueues?: string[]; removeQueues?: string[]; concurrency?: number },
  ): Promise<Worker> {
    const worker = await updateWorkerConfig(this.life.db, idOrName, change);
    if (!worker) throw new NotFoundError('worker', idOrName);
    this.life.signals.emit({ kind: 'worker', workerId: worker.id });
    return this.getWorker(worker.id);
  }

  // ---------------------------------------------------------------- worker protocol

  /** Registers (or re-registers) a worker and hands it its own token; only a hash is kept. */
  async registerWorker(input: {
    name: string;
    queues: string[];
    concurrency: number;
    labels: Record<string, string>;
    runtime: string;
    version: string;
  }): Promise<{ worker: Worker; token: string }> {
    const secret = newSecret();
    const { worker, previousId } = await this.life.db.tx(async (q) => {
      const result = await upsertWorker(q, { ...input, tokenHash: hashSecret(secret) });
      // The previous incarnation of this worker is gone: settle what it held.
      if (result.previousId) await this.settleWorkloadsOfGoneWorker(q, result.previousId, 'worker re-registered');
      return result;
    });
    if (previousId) {
      this.forgetWorker(previousId);
      this.life.afterBulkChange();
    }
    this.life.logger.info(
      { worker: worker.name, queues: worker.queues, concurrency: worker.concurrency },
      'worker registered',
    );
    return { worker, token: `afw_${worker.id.replaceAll('-', '')}_${secret}` };
  }

  async heartbeat(
    workerId: string,
    input: { metrics?: WorkerMetrics | undefined; running: RunningEntry[]; draining?: boolean | undefined },
  ): Promise<PollResult> {
    const beat = await heartbeat(this.life.db, workerId, {
      ...(input.metrics ? { metrics: input.metrics } : {}),
      ...(input.draining !== undefined ? { draining: input.draining } : {}),
    });
    if (!beat) throw new NotFoundError('worker', workerId);
    if (beat.worker.state === 'lost' || beat.worker.state === 'offline') throw goneError(beat.worker);
    await this.reconcileWorkerView(workerId, input.running, beat.held);
    return {
      leases: [],
      cancel: beat.held.filter((h) => h.cancelRequested).map((h) => ({ workloadId: h.id, attempt: h.attempt })),
      config: view(beat.worker),
    };
  }

  /**
   * Compares what the worker says it runs with what the database says it holds. A lease the worker never
   * acknowledged (its reply was lost) is requeued; a task the worker no longer knows about failed as lost.
   */
  private async reconcileWorkerView(workerId: string, running: RunningEntry[], held: HeldWorkload[]): Promise<void> {
    const known = new Set(running.map((r) => `${r.workloadId}#${r.attempt}`));
    let changed = false;
    for (const h of held) {
      if (known.has(`${h.id}#${h.attempt}`) || Date.now() - h.sinceMs < this.life.config.leaseAckTimeoutMs) continue;
      const w = await getWorkload(this.life.db, h.id);
      if (!w || w.attempt !== h.attempt || isTerminal(w.state)) continue;
      await this.life.db.tx((q) =>
        this.life.failAttempt(q, w, 'lost', w.state === 'running', `worker ${workerId} no longer reports this task`),
      );
      changed = true;
    }
    if (changed) this.life.afterBulkChange();
  }

  private async cancelsFor(q: Queryable, workerId: string): Promise<Array<{ workloadId: string; attempt: number }>> {
    const { rows } = await q.query<{ id: string; attempt: number }>(
      `SELECT id, attempt FROM workloads WHERE worker_id = $1::uuid AND cancel_requested AND state IN ('pending', 'running')`,
      [workerId],
    );
    return rows.map((r) => ({ workloadId: r.id, attempt: r.attempt }));
  }

  /**
   * The worker's long-poll: returns as soon as there are leases for its free slots, cancellations, or a
   * change of its configuration; otherwise after `waitMs` with nothing. Each pass is one transaction.
   */
  async poll(
    workerId: string,
    input: { freeSlots: number; waitMs: number; known?: Partial<WorkerView> | undefined },
    signal?: AbortSignal,
  ): Promise<PollResult> {
    const deadline = Date.now() + input.waitMs;
    const waiters = this.life.queueWaiters;
    const skipped = this.skipPass(workerId, input.known);
    if (skipped) {
      this.life.metrics.pollPasses.inc({ outcome: 'skipped' });
      if ((await this.park(skipped.keys, deadline - Date.now(), signal)) === 'timeout' || signal?.aborted) {
        return skipped.result;
      }
    }
    for (;;) {
      const started = process.hrtime.bigint();
      const mark = waiters.mark();
      const { result, keys, exhausted } = await this.life.db.tx((q) => this.leasePass(q, workerId, signal));
      this.rememberPass(workerId, exhausted ? { mark, at: Date.now(), keys, config: result.config } : null);
      this.life.metrics.pollPasses.inc({ outcome: result.leases.length > 0 ? 'leased' : 'empty' });
      if (result.leases.length > 0) this.afterLease(result.leases, started);
      const configChanged = viewBehind(input.known, result.config);
      const left = deadline - Date.now();
      if (result.leases.length > 0 || result.cancel.length > 0 || configChanged || left <= 0 || signal?.aborted) {
        return result;
      }
      // Signalled while the pass ran (after its snapshot, before this park) and nobody parked took it: look
      // again rather than park past it.
      if (waiters.signalledSince(keys, mark)) continue;
      // Nothing woke it: nothing changed for this worker, so answer without another round trip (2,000
      // idle workers time out 100 times a second).
      if ((await this.park(keys, left, signal)) === 'timeout') return result;
    }
  }

  /** The lease transaction: the worker's row locked, so two polls of one worker never fill the same slots. */
  private async leasePass(q: Queryable, workerId: string, signal: AbortSignal | undefined): Promise<PassOutcome> {
    const worker = await lockWorkerForPoll(q, workerId);
    if (!worker) throw new NotFoundError('worker', workerId);
    if (worker.state === 'lost' || worker.state === 'offline') throw goneError(worker);
    const config = view(worker);
    const accepting = !worker.maintenance && !worker.draining;
    const keys = [`w:${workerId}`, ...(accepting ? worker.queues.map((name) => `q:${name}`) : [])];
    // The worker hung up (it is stopping): leasing now would hand work to nobody.
    if (signal?.aborted) return { result: { leases: [], cancel: [], config }, keys, exhausted: false };
    const cancel = worker.hasCancel ? await this.cancelsFor(q, workerId) : [];
    // Slots are accounted here, not by the worker: a slot is free the moment the service records the end of
    // the task that held it, and that wakes this poll (see Lifecycle.afterChange), so the worker never hangs
    // up to re-poll (which could strand a lease granted while its reply had nowhere to go).
    const free = Math.max(0, worker.concurrency - worker.usedSlots);
    const { leases, wantsSlots, more } =
      accepting && free > 0
        ? await this.leaseWithin(q, worker, free)
        : { leases: [], wantsSlots: accepting, more: false };
    // Woken by freed slots only when slots are what held work back: otherwise every task end would cost a
    // lease pass that finds nothing (new work wakes the poll through its queue anyway).
    if (wantsSlots) keys.push(`s:${workerId}`);
    return { result: { leases, cancel, config }, keys, exhausted: !wantsSlots && !more };
  }

  /**
   * A worker polls again the moment a poll hands it leases. When its previous pass on this instance, just
   * now, found nothing more it could take, and no wake-up for its queues or for itself went unanswered since
   * that pass began, another pass would find nothing either: park at once and skip a transaction of five
   * statements, a third of the database work of a task at steady load. A wake-up that parked polls did
   * answer is theirs to serve. Bounded to a second, so what no signal announces (a worker written off
   * on another instance) is still seen soon.
   */
  private skipPass(
    workerId: string,
    known: Partial<WorkerView> | undefined,
  ): { keys: string[]; result: PollResult } | null {
    const last = this.exhaustedPasses.get(workerId);
    if (!last) return null;
    this.exhaustedPasses.delete(workerId);
    if (Date.now() - last.at > SKIP_PASS_WITHIN_MS) return null;
    // The worker's view of its configuration is behind: the pass would answer at once, so make it.
    if (viewBehind(known, last.config)) return null;
    const keys = last.keys.includes(`s:${workerId}`) ? last.keys : [...last.keys, `s:${workerId}`];
    if (this.life.queueWaiters.signalledSince(keys, last.mark)) return null;
    return { keys, result: { leases: [], cancel: [], config: last.config } };
  }

  /** Parks the poll on `keys` for up to `ms`; the worker hanging up wakes it. */
  private park(keys: readonly string[], ms: number, signal: AbortSignal | undefined): Promise<'woken' | 'timeout'> {
    const waiter = this.life.queueWaiters.park(keys, Math.max(0, ms));
    signal?.addEventListener('abort', () => waiter.notify(), { once: true });
    return waiter.promise;
  }

  /** A worker whose token no longer holds (re-registered, lost, offline): drop what this instance keeps of it. */
  private forgetWorker(workerId: string): void {
    this.forgetWorkerToken(workerId);
    this.exhaustedPasses.delete(workerId);
  }

  private rememberPass(workerId: string, pass: ExhaustedPass | null): void {
    if (!pass) {
      this.exhaustedPasses.delete(workerId);
      return;
    }
    if (this.exhaustedPasses.size >= MAX_REMEMBERED_PASSES) this.exhaustedPasses.clear();
    this.exhaustedPasses.set(workerId, pass);
  }

  /**
   * Inside the poll's transaction: lock candidates (SKIP LOCKED), choose what fits, mark them pending.
   * `wantsSlots`: queued work was left because of the worker's free slots, so freed slots should wake it.
   * `more`: as many candidates as it asked for came back, so there may be more queued than it saw.
   */
  private async leaseWithin(
    q: Queryable,
    worker: Worker,
    free: number,
  ): Promise<{ leases: Workload[]; wantsSlots: boolean; more: boolean }> {
    const candidates = await lockLeaseCandidates(q, worker.queues, free, free);
    const more = candidates.length >= free;
    const wantsSlots = async (taken: number) =>
      candidates.length > taken ||
      (free < worker.concurrency && (await hasQueuedBiggerThan(q, worker.queues, free, worker.concurrency)));
    if (candidates.length === 0) return { leases: [], wantsSlots: await wantsSlots(0), more };
    const chosen = pickLeases(
      candidates.map((c) => ({
        id: c.id,
        poolSlots: c.pool_slots,
        priorityWeight: c.priority_weight,
        queuedAt: new Date(c.queued_at).getTime(),
      })),
      free,
    );
    const marked = await markLeased(
      q,
      chosen.map((c) => c.id),
      worker.id,
    );
    // UPDATE returns rows in no particular order; hand them out in lease order.
    const rank = new Map(chosen.map((c, i) => [c.id, i]));
    const leases = marked.sort((a, b) => rank.get(a.id)! - rank.get(b.id)!);
    const usedNow = chosen.reduce((sum, c) => sum + c.poolSlots, 0);
    return { leases, wantsSlots: usedNow >= free || (await wantsSlots(chosen.length)), more };
  }

  private afterLease(leased: Workload[], started: bigint): void {
    this.life.metrics.leaseLatency.observe(Number(process.hrtime.bigint() - started) / 1e9);
    const now = Date.now();
    for (const w of leased)
      this.life.metrics.dispatchLatency.observe({ queue: w.queue }, (now - Date.parse(w.queuedAt)) / 1000);
    this.life.feed.poke();
  }

  /** A worker reports progress or the end of an attempt. Reports are fenced and idempotent. */
  async report(workerId: string, report: Report): Promise<Workload> {
    const current = await getWorkload(this.life.db, report.workloadId);
    if (!current) throw new NotFoundError('workload', report.workloadId);
    if (current.attempt !== report.attempt || current.workerId !== workerId) {
      throw new ConflictError(
        `report for attempt ${report.attempt} of ${report.workloadId} is stale: the workload is on attempt ${current.attempt}${
          current.workerId === workerId ? '' : ' of another worker'
        }; drop it`,
        { attempt: current.attempt },
      );
    }
    if (current.state === report.state) return current; // a retried report whose first reply was lost
    const result = await this.life.apply(current, updateOf(report), workerId);
    if (!result) {
      const now = await getWorkload(this.life.db, report.workloadId);
      if (now && isTerminal(now.state)) return now;
      throw new ConflictError(`cannot move workload ${current.id} from ${now?.state} to ${report.state}`, {
        state: now?.state,
      });
    }
    return result;
  }

  async appendLog(
    workerId: string,
    chunk: { workloadId: string; attempt: number; stream: LogStream; offset: number; data: Buffer },
  ): Promise<void> {
    const { rows } = await this.life.db.query<{ worker_id: string | null; attempt: number }>(
      'SELECT worker_id, attempt FROM workloads WHERE id = $1::uuid',
      [chunk.workloadId],
    );
    const row = rows[0];
    if (!row) throw new NotFoundError('workload', chunk.workloadId);
    if (row.worker_id !== workerId || row.attempt !== chunk.attempt) {
      throw new ConflictError(
        `logs for attempt ${chunk.attempt} of ${chunk.workloadId} do not belong to this worker; drop them`,
      );
    }
    await appendLogChunk(this.life.db, chunk);
    this.life.signals.emit({ kind: 'log', workloadId: chunk.workloadId });
  }

  /** A worker leaving cleanly: it should hold nothing; whatever it still holds is settled as lost. */
  async deregister(workerId: string): Promise<void> {
    await this.life.db.tx(async (q) => {
      await this.settleWorkloadsOfGoneWorker(q, workerId, 'worker went offline');
      await setWorkerState(q, workerId, 'offline');
    });
    this.forgetWorker(workerId);
    this.life.afterBulkChange();
  }

  /** Reaper pass: a worker silent past the heartbeat timeout is lost, and so are its tasks. */
  async reapSilentWorkers(): Promise<void> {
    const timeoutMs = this.life.config.heartbeatTimeoutMs;
    for (const workerId of await silentWorkers(this.life.db, timeoutMs / 1000)) {
      await this.life.db.tx(async (q) => {
        await setWorkerState(q, workerId, 'lost');
        await this.settleWorkloadsOfGoneWorker(q, workerId, `no heartbeat for ${timeoutMs} ms`);
      });
      this.forgetWorker(workerId);
      this.life.logger.warn({ workerId }, 'worker lost: no heartbeat within the timeout; its tasks were settled');
      this.life.afterBulkChange();
    }
  }

  private async settleWorkloadsOfGoneWorker(q: Queryable, workerId: string, why: string): Promise<void> {
    for (const w of await workloadsOfWorker(q, workerId)) {
      await this.life.failAttempt(q, w, 'lost', w.state === 'running', why);
    }
  }
}

/** How recent a pass must be for the next poll to skip its own (see PoolBackend.skipPass). */
const SKIP_PASS_WITHIN_MS = 1_000;
/** Where the record of passes is wiped rather than grown (wiping only costs passes). */
const MAX_REMEMBERED_PASSES = 100_000;

interface PassOutcome {
  result: PollResult;
  /** What should wake the poll if it parks. */
  keys: string[];
  /** Nothing more it could take was queued (see PoolBackend.skipPass). */
  exhausted: boolean;
}

interface ExhaustedPass {
  /** The wake-up generation when the pass began. */
  mark: number;
  at: number;
  keys: string[];
  config: WorkerView;
}

/** Whether the configuration the worker says it knows differs from its current one (a poll answers at once). */
function viewBehind(known: Partial<WorkerView> | undefined, config: WorkerView): boolean {
  return (
    known !== undefined &&
    (known.maintenance !== config.maintenance ||
      known.concurrency !== config.concurrency ||
      (known.queues ?? []).join(',') !== config.queues.join(','))
  );
}

/** A worker's report in the shape every backend's watcher uses. */
function updateOf(report: Report): BackendUpdate {
  const base = { workloadId: report.workloadId, attempt: report.attempt };
  switch (report.state) {
    case 'running':
      return { ...base, state: 'running' };
    case 'succeeded':
      return { ...base, state: 'succeeded', exitCode: report.exitCode ?? 0 };
    case 'cancelled':
      return {
        ...base,
        state: 'cancelled',
        exitCode: report.exitCode ?? null,
        ...(report.message ? { message: report.message } : {}),
      };
    case 'failed':
      return {
        ...base,
        state: 'failed',
        reason: report.reason ?? 'task_error',
        started: report.started ?? true,
        exitCode: report.exitCode ?? null,
        ...(report.message ? { message: report.message } : {}),
      };
  }
}

function view(worker: Worker): WorkerView {
  return {
    queues: worker.queues,
    concurrency: worker.concurrency,
    maintenance: worker.maintenance,
    maintenanceComment: worker.maintenanceComment,
    state: worker.state,
  };
}

function goneError(worker: Worker): ConflictError {
  return new ConflictError(
    `worker ${worker.name} is ${worker.state}: its leases were taken back; register again to get new work`,
    { state: worker.state },
  );
}
