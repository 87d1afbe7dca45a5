import type { Backend } from '../backends/backend.ts';
import type { PoolBackend } from '../backends/pool/pool-backend.ts';
import type { Workload } from '../domain/workload.ts';
import { pruneInstances } from '../store/instances.ts';
import { pruneEvents, pruneFinished } from '../store/retention.ts';
import { pastPendingDeadline, pastRunDeadline, requestStop } from '../store/workloads.ts';
import type { Lifecycle } from './lifecycle.ts';
import type { Reconciler } from './reconciler.ts';
import { waitingReason } from './waiting.ts';

/** How often the leader prunes old rows, ms. */
const PRUNE_EVERY_MS = 60_000;
const PRUNE_BATCH = 1_000;

/**
 * The periodic work that must happen once however many instances run, done by the leader only
 * (service/membership.ts): silent workers written off, passed deadlines turned into stop requests, attempts
 * of dead instances reconciled, old rows pruned. Each step is safe to repeat, so a pass cut short by a
 * crash or a change of leader is simply done again by the next.
 */
export class Reaper {
  private readonly life: Lifecycle;
  private readonly pool: PoolBackend;
  private readonly pushBackends: Backend[];
  private readonly reconciler: Reconciler;
  /** Delivers a stop request to whoever runs the attempt (its worker, or its owner instance). */
  private readonly deliverStop: (w: Workload) => void;
  private lastPrune = 0;

  constructor(deps: {
    life: Lifecycle;
    pool: PoolBackend;
    backends: Backend[];
    reconciler: Reconciler;
    deliverStop: (w: Workload) => void;
  }) {
    this.life = deps.life;
    this.pool = deps.pool;
    this.pushBackends = deps.backends.filter((b) => b.mode === 'push');
    this.reconciler = deps.reconciler;
    this.deliverStop = deps.deliverStop;
  }

  async pass(): Promise<void> {
    await this.pool.workers.reapSilent();
    await this.pendingDeadlines();
    await this.runDeadlines();
    for (const backend of this.pushBackends) await this.reconciler.orphansOf(backend);
    this.life.feed.poke();
    if (Date.now() - this.lastPrune > PRUNE_EVERY_MS) {
      this.lastPrune = Date.now();
      await this.prune();
    }
  }

  /**
   * Not started within `pendingSeconds`. Still queued: no attempt exists, so it fails now, saying why it
   * waited. Handed out (submitted, leased): the attempt is stopped first; it is failed, or retried as a new
   * attempt, only once its worker or backend confirms it ended (Lifecycle.settleEnd), never before — a
   * second attempt must not start while the first may still run.
   */
  private async pendingDeadlines(): Promise<void> {
    for (const w of await pastPendingDeadline(this.life.db, 500)) {
      const message = `not started within pendingSeconds=${w.timeouts.pendingSeconds}`;
      if (w.state === 'queued') {
        const why = await waitingReason(this.life.db, w);
        await this.life.failAttemptNow(w.id, w.attempt, 'unschedulable', false, why ? `${message}: ${why}` : message);
        continue;
      }
      const stopped = await requestStop(this.life.db, w.id, w.attempt, 'unschedulable', message);
      if (stopped) this.deliverStop(stopped);
    }
  }

  /** Push attempts past `runSeconds` are stopped, and failed once the backend confirms. */
  private async runDeadlines(): Promise<void> {
    for (const w of await pastRunDeadline(this.life.db, 500)) {
      const stopped = await requestStop(
        this.life.db,
        w.id,
        w.attempt,
        'task_error',
        `exceeded runSeconds=${w.timeouts.runSeconds}`,
      );
      if (stopped) this.deliverStop(stopped);
    }
  }

  private async prune(): Promise<void> {
    const retention = this.life.config.retentionSeconds;
    let workloads = 0;
    let events = 0;
    let n: number;
    do {
      n = await pruneFinished(this.life.db, retention, PRUNE_BATCH);
      workloads += n;
    } while (n === PRUNE_BATCH);
    do {
      n = await pruneEvents(this.life.db, retention, PRUNE_BATCH);
      events += n;
    } while (n === PRUNE_BATCH);
    await pruneInstances(this.life.db);
    if (workloads + events > 0) this.life.logger.info({ workloads, events }, 'pruned rows past the retention');
  }
}
