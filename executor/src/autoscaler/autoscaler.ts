import type { Logger } from 'pino';
import type { Db } from '../store/db.ts';
import {
  type PoolSample,
  type PoolStatus,
  readPoolStatuses,
  withSample,
  writePoolStatus,
} from '../store/pool-status.ts';
import type { Worker } from '../store/workers.ts';
import { queueStats } from '../store/workloads.ts';
import { type Decision, decide } from './decide.ts';
import { inPool, type PoolDriver } from './drivers/driver.ts';
import type { PoolConfig } from './pool-config.ts';

/** The maintenance comment that marks a worker as chosen for scale-in by the autoscaler (and by which pool). */
export function scaleInComment(pool: string): string {
  return `autoscaler: scale-in of pool ${pool}`;
}

export interface AutoscalerDeps {
  db: Db;
  logger: Logger;
  pools: readonly PoolConfig[];
  drivers: ReadonlyMap<string, PoolDriver>;
  /** The worker registry's administration (maintenance goes through it, so the worker is woken). */
  workers: {
    list(): Promise<Worker[]>;
    setMaintenance(idOrName: string, on: boolean, comment: string | null): Promise<Worker>;
  };
  now?: () => number;
}

interface PoolMemory {
  lastScaleOutMs: number | null;
  lastScaleInMs: number | null;
  /** When each worker chosen for scale-in must have drained by (ms). */
  drainDeadlines: Map<string, number>;
  lastLogged: string | null;
  /** Desired and actual over the last hour; a new leader starts from what its predecessor published. */
  history: PoolSample[] | null;
}

const LIVE = (w: Worker) => w.state !== 'lost' && w.state !== 'offline';

/**
 * Turns each pool's backlog into capacity (docs/autoscaler.md). Run by the leader instance only, one pass
 * every `autoscaleIntervalMs`: read the backlog, the pool's workers and the platform's capacity, decide
 * (decide.ts), and carry it out through the pool's driver.
 *
 * Scale-in never stops a running task: the chosen workers are idle ones, put in maintenance (no new leases),
 * and removed by the driver only once the service sees them holding nothing. Those that have not drained by
 * the pool's drain timeout are put back to work instead. Which workers are being scaled in is kept on the
 * workers themselves (their maintenance comment), so a new leader carries on with a scale-in its predecessor
 * began.
 */
export class Autoscaler {
  private readonly deps: AutoscalerDeps;
  private readonly memory = new Map<string, PoolMemory>();
  private readonly now: () => number;

  constructor(deps: AutoscalerDeps) {
    this.deps = deps;
    this.now = deps.now ?? (() => Date.now());
  }

  /** Forget cooldown clocks (leadership lost): a new term starts with scale-in held for one cooldown. */
  reset(): void {
    this.memory.clear();
  }

  private memoryOf(pool: PoolConfig): PoolMemory {
    let m = this.memory.get(pool.name);
    if (!m) {
      // A leader that just took over does not know when its predecessor last scaled: scale-in waits one
      // cooldown from now, scale-out may act at once.
      m = {
        lastScaleOutMs: null,
        lastScaleInMs: this.now(),
        drainDeadlines: new Map(),
        lastLogged: null,
        history: null,
      };
      this.memory.set(pool.name, m);
    }
    return m;
  }

  /** One pass over every pool; a pool whose driver fails is logged and retried next pass. */
  async pass(): Promise<void> {
    const [stats, workers] = await Promise.all([queueStats(this.deps.db), this.deps.workers.list()]);
    for (const pool of this.deps.pools) {
      const queues = new Set(pool.queues);
      const mine = stats.filter((s) => s.backend === 'pool' && queues.has(s.queue));
      const backlog = {
        queuedSlots: mine.reduce((n, s) => n + s.queuedSlots, 0),
        runningSlots: mine.reduce((n, s) => n + s.runningSlots, 0),
      };
      const poolWorkers = workers.filter((w) => inPool(w, pool.name) && LIVE(w));
      try {
        await this.passPool(pool, backlog, poolWorkers);
      } catch (error) {
        this.deps.logger.warn({ pool: pool.name, err: (error as Error).message }, 'autoscaler pass failed; will retry');
        await this.publish(pool, backlog, poolWorkers, null, null, (error as Error).message).catch(() => undefined);
      }
    }
  }

  private async passPool(
    pool: PoolConfig,
    backlog: { queuedSlots: number; runningSlots: number },
    workers: Worker[],
  ): Promise<void> {
    const driver = this.deps.drivers.get(pool.name);
    if (!driver) throw new Error(`no driver for pool ${pool.name}`);
    const memory = this.memoryOf(pool);
    const now = this.now();
    let scalingIn = workers.filter((w) => w.maintenance && w.maintenanceComment === scaleInComment(pool.name));

    // A scale-in under way: remove what has drained, put back what did not drain in time.
    if (scalingIn.length > 0) {
      for (const w of scalingIn)
        if (!memory.drainDeadlines.has(w.id)) memory.drainDeadlines.set(w.id, now + pool.drainTimeoutSeconds * 1000);
      const drained = scalingIn.filter((w) => w.runningWorkloads === 0 && w.usedSlots === 0);
      const late = scalingIn.filter((w) => !drained.includes(w) && (memory.drainDeadlines.get(w.id) ?? now) <= now);
      if (drained.length > 0) {
        await driver.remove(drained);
        memory.lastScaleInMs = this.now();
        this.deps.logger.info(
          { pool: pool.name, removed: drained.map((w) => w.name) },
          'autoscaler: drained workers removed',
        );
      }
      for (const w of late) {
        await this.deps.workers.setMaintenance(w.id, false, null);
        this.deps.logger.warn(
          {
            pool: pool.name,
            worker: w.name,
            drainTimeoutSeconds: pool.drainTimeoutSeconds,
            running: w.runningWorkloads,
          },
          'autoscaler: a worker chosen for scale-in did not drain in time; it is back at work and stays',
        );
      }
      // A drain that timed out counts as a scale-in for the cooldown: the next attempt waits a full one.
      if (late.length > 0) memory.lastScaleInMs = this.now();
      const gone = new Set([...drained, ...late].map((w) => w.id));
      for (const id of gone) memory.drainDeadlines.delete(id);
      scalingIn = scalingIn.filter((w) => !gone.has(w.id));
    }

    if (driver.publish) await driver.publish({ ...backlog, queue: pool.queues[0]! });
    const observed = await driver.observe();
    const input = {
      ...backlog,
      current: observed.target,
      scalingIn: scalingIn.length,
      nowMs: this.now(),
      lastScaleOutMs: memory.lastScaleOutMs,
      lastScaleInMs: memory.lastScaleInMs,
    };
    const decision = decide(pool, input);
    this.log(pool, memory, decision, { ...input, running: observed.running, workers: workers.length });

    if (decision.cancelScaleIn) {
      for (const w of scalingIn) {
        await this.deps.workers.setMaintenance(w.id, false, null);
        memory.drainDeadlines.delete(w.id);
      }
      scalingIn = [];
    }
    if (decision.action === 'scale_out') {
      await driver.scaleTo(decision.target);
      memory.lastScaleOutMs = this.now();
    } else if (decision.action === 'scale_in' && driver.scaleIn !== 'platform') {
      scalingIn = await this.startScaleIn(pool, driver, workers, observed.target - decision.target, memory);
    }
    await this.publish(pool, backlog, workers, decision, observed, null, scalingIn, memory);
  }

  /** Puts `count` idle workers of the pool in maintenance; the next passes remove them once drained. */
  private async startScaleIn(
    pool: PoolConfig,
    driver: PoolDriver,
    workers: Worker[],
    count: number,
    memory: PoolMemory,
  ): Promise<Worker[]> {
    const idle = workers.filter((w) => w.state === 'idle' && !w.maintenance && !w.draining && w.runningWorkloads === 0);
    const ranked = driver.rankForRemoval ? await driver.rankForRemoval(idle) : idle;
    const chosen: Worker[] = [];
    for (const w of ranked.slice(0, count)) {
      chosen.push(await this.deps.workers.setMaintenance(w.id, true, scaleInComment(pool.name)));
      memory.drainDeadlines.set(w.id, this.now() + pool.drainTimeoutSeconds * 1000);
    }
    memory.lastScaleInMs = this.now();
    this.deps.logger.info(
      { pool: pool.name, wanted: count, chosen: chosen.map((w) => w.name), idle: idle.length },
      chosen.length < count
        ? 'autoscaler: scale-in started with fewer idle workers than wanted (busy workers are never chosen)'
        : 'autoscaler: scale-in started: chosen idle workers are in maintenance until drained',
    );
    return chosen;
  }

  /** Every decision is logged with its inputs: at info when it acts or its reason changes, else at debug. */
  private log(pool: PoolConfig, memory: PoolMemory, decision: Decision, inputs: Record<string, unknown>): void {
    const summary = `${decision.action}/${decision.target}/${decision.reason.replace(/\d+ s left/, '')}`;
    const level =
      decision.action !== 'hold' || decision.cancelScaleIn || summary !== memory.lastLogged ? 'info' : 'debug';
    memory.lastLogged = summary;
    this.deps.logger[level]({ pool: pool.name, inputs, decision }, 'autoscaler decision');
  }

  private async publish(
    pool: PoolConfig,
    backlog: { queuedSlots: number; runningSlots: number },
    workers: Worker[],
    decision: Decision | null,
    observed: { target: number; running: number } | null,
    error: string | null,
    scalingIn: Worker[] = [],
    memory: PoolMemory = this.memoryOf(pool),
  ): Promise<void> {
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    const status: PoolStatus = {
      pool: pool.name,
      ...backlog,
      desired: decision?.desired ?? 0,
      target: decision
        ? decision.action === 'hold'
          ? (observed?.target ?? 0)
          : decision.target
        : (observed?.target ?? 0),
      running: observed?.running ?? 0,
      workers: workers.length,
      scalingIn: scalingIn.map((w) => w.name),
      lastDecision: {
        at: new Date(this.now()).toISOString(),
        action: decision?.action ?? 'error',
        target: decision?.target ?? 0,
        reason: decision?.reason ?? error ?? '',
      },
      lastScaleOutAt: iso(memory.lastScaleOutMs),
      lastScaleInAt: iso(memory.lastScaleInMs),
      error,
    };
    memory.history ??= (await readPoolStatuses(this.deps.db)).get(pool.name)?.history ?? [];
    memory.history = withSample(memory.history, {
      at: status.lastDecision.at,
      desired: status.desired,
      actual: status.running,
    });
    await writePoolStatus(this.deps.db, { ...status, history: memory.history });
  }
}
