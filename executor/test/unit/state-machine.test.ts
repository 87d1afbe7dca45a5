import pino from 'pino';
import type {
  AttemptRef,
  Backend,
  BackendHost,
  InFlightAttempt,
  ReconcileVerdict,
  SubmitResult,
} from '../../src/backends/backend.ts';
import { SubmitError } from '../../src/backends/backend.ts';
import type { StopOrder } from '../../src/backends/pool/worker-registry.ts';
import { parseServiceConfig } from '../../src/config.ts';
import { isTerminal, TRANSITIONS, transitionsBetween, type WorkloadState } from '../../src/domain/states.ts';
import { workloadInput } from '../../src/domain/workload.ts';
import { ExecutorService } from '../../src/service/executor-service.ts';
import { DatabaseUnavailableError, type Db, type HeldLock, type Queryable } from '../../src/store/db.ts';
import { PgliteDb } from '../../src/store/pglite.ts';
import { seeded } from '../support/seeded.ts';

/**
 * The state machine under random interleavings (docs/architecture.md, "One state machine"): two service
 * instances on one database, a simulated push backend (the "cloud", whose ground truth the test keeps),
 * simulated pull workers, and random submissions, leases, starts, ends, cancels, pending timeouts, submit
 * errors, submits whose answer is lost, workers killed or cut off, and instances crashed and restarted.
 *
 * It asserts what a user relies on: every change the feed recorded is a transition of the table, no task
 * ever starts twice (counted where it runs, not from what the service believes), and in the end every
 * workload is finished, each success by exactly one run.
 */

const SEEDS = (process.env.AIRFLEET_PROPERTY_SEEDS ?? '1,2,3').split(',').map(Number);
const WORKLOADS = 60;

/** One instance's view of the shared database: after crash(), everything it tries fails, as for a dead process. */
class MortalDb implements Db {
  readonly kind = 'pglite' as const;
  private dead = false;
  private readonly locks: HeldLock[] = [];
  private readonly inner: Db;
  constructor(inner: Db) {
    this.inner = inner;
  }
  private alive(): void {
    if (this.dead) throw new DatabaseUnavailableError('this instance crashed');
  }
  async query<T>(sql: string, params?: readonly unknown[]): Promise<{ rows: T[] }> {
    this.alive();
    return this.inner.query<T>(sql, params);
  }
  async exec(sql: string): Promise<void> {
    this.alive();
    await this.inner.exec(sql);
  }
  async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    this.alive();
    return this.inner.tx((q) =>
      fn({
        query: async <R>(sql: string, params?: readonly unknown[]) => {
          this.alive();
          return q.query<R>(sql, params);
        },
        exec: async (sql: string) => {
          this.alive();
          await q.exec(sql);
        },
      }),
    );
  }
  async tryLock(key: number): Promise<HeldLock | null> {
    this.alive();
    const lock = await this.inner.tryLock(key);
    if (!lock) return null;
    this.locks.push(lock);
    return { check: async () => !this.dead && (await lock.check()), release: () => lock.release() };
  }
  async listen(): Promise<() => Promise<void>> {
    return async () => undefined;
  }
  async close(): Promise<void> {}
  /** The process died: its session (and so its leader lock) is gone. */
  async crash(): Promise<void> {
    this.dead = true;
    for (const lock of this.locks) await lock.release();
  }
}

interface Job {
  workloadId: string;
  attempt: number;
  state: 'made' | 'running' | 'ended';
  stopRequested: boolean;
}

/** The push backend's world, shared by the instances: the truth about every job. */
class Cloud {
  readonly jobs = new Map<string, Job>();
  /** How many times each workload's task really started. */
  readonly starts = new Map<string, number>();
  readonly backends = new Set<SimBackend>();
  private readonly random: () => number;
  constructor(random: () => number) {
    this.random = random;
  }

  /** Events no live instance took (each one that tried was crashing): told again, as a watcher re-polls. */
  private untold: Array<{ update: Parameters<BackendHost['update']>[0]; started?: boolean }> = [];

  /** One step of the world: jobs start, end, and stop when asked. */
  async step(): Promise<void> {
    const again = this.untold;
    this.untold = [];
    for (const e of again) await this.tell(e.update, e.started);
    for (const job of this.jobs.values()) {
      if (job.state === 'ended') continue;
      if (job.stopRequested) {
        const started = job.state === 'running';
        job.state = 'ended';
        await this.tell({ workloadId: job.workloadId, attempt: job.attempt, state: 'cancelled' }, started);
      } else if (job.state === 'made' && this.random() < 0.3) {
        job.state = 'running';
        this.starts.set(job.workloadId, (this.starts.get(job.workloadId) ?? 0) + 1);
        await this.tell({ workloadId: job.workloadId, attempt: job.attempt, state: 'running' });
      } else if (job.state === 'running' && this.random() < 0.3) {
        job.state = 'ended';
        await this.tell(
          this.random() < 0.8
            ? { workloadId: job.workloadId, attempt: job.attempt, state: 'succeeded', exitCode: 0 }
            : {
                workloadId: job.workloadId,
                attempt: job.attempt,
                state: 'failed',
                reason: 'task_error',
                started: true,
                exitCode: 1,
              },
        );
      }
    }
  }

  /** Watchers of every live instance see every event (updates are fenced and idempotent). */
  private async tell(update: Parameters<BackendHost['update']>[0], started?: boolean): Promise<void> {
    const u =
      update.state === 'cancelled' && started === false
        ? ({
            ...update,
            state: 'failed',
            reason: 'lost',
            started: false,
            message: 'stopped before it started',
          } as const)
        : update;
    let taken = false;
    for (const b of this.backends) {
      await b.host
        ?.update(u)
        .then(() => {
          taken = true;
        })
        .catch(() => undefined);
    }
    // A real watcher (Batch's DescribeJobs, Nomad's event stream and resync) sees the job's state again
    // later; without this, an event lost while every instance was crashing left its workload pending forever.
    if (!taken) this.untold.push({ update, ...(started !== undefined ? { started } : {}) });
  }
}

class SimBackend implements Backend {
  readonly name = 'batch' as const;
  readonly mode = 'push' as const;
  host: BackendHost | null = null;
  private readonly cloud: Cloud;
  private readonly random: () => number;
  constructor(cloud: Cloud, random: () => number) {
    this.cloud = cloud;
    this.random = random;
  }
  async start(host: BackendHost): Promise<void> {
    this.host = host;
    this.cloud.backends.add(this);
  }
  async submit(w: { id: string }, attempt: number): Promise<SubmitResult> {
    const roll = this.random();
    if (roll < 0.1) throw new SubmitError('the cloud said no');
    const key = `${w.id}#${attempt}`;
    if (roll < 0.15) {
      // The answer is lost: the job may or may not exist.
      if (this.random() < 0.5)
        this.cloud.jobs.set(key, { workloadId: w.id, attempt, state: 'made', stopRequested: false });
      throw new Error('socket hang up');
    }
    // Job ids derive from workload and attempt: submitting the same attempt again finds the same job.
    if (!this.cloud.jobs.has(key)) {
      this.cloud.jobs.set(key, { workloadId: w.id, attempt, state: 'made', stopRequested: false });
    }
    return { ref: key };
  }
  async cancel(target: AttemptRef): Promise<void> {
    const job = this.cloud.jobs.get(`${target.workloadId}#${target.attempt}`);
    if (job && job.state !== 'ended') job.stopRequested = true;
    if (!job) await this.host?.update({ ...target, state: 'failed', reason: 'lost', started: false });
  }
  async fetchLogs(): Promise<void> {}
  async reconcile(inFlight: InFlightAttempt[]): Promise<ReconcileVerdict[]> {
    return inFlight.map((a) => {
      const key = `${a.workloadId}#${a.attempt}`;
      const job = this.cloud.jobs.get(key);
      if (!job) {
        return a.state === 'submitting'
          ? { workloadId: a.workloadId, attempt: a.attempt, verdict: 'absent' as const }
          : { workloadId: a.workloadId, attempt: a.attempt, verdict: 'lost' as const, started: false, message: 'gone' };
      }
      return { workloadId: a.workloadId, attempt: a.attempt, verdict: 'attached' as const, ref: key };
    });
  }
  async close(): Promise<void> {
    this.cloud.backends.delete(this);
  }
}

interface SimTask {
  attempt: number;
  started: boolean;
  stop: StopOrder | null;
}

/** A pull worker, simulated in-process against an instance's PoolBackend (as its HTTP handlers would). */
class SimWorker {
  id: string | null = null;
  token: string | null = null;
  tasks = new Map<string, SimTask>();
  /** Dead: process gone (its tasks died with it). Cut off: alive but cannot reach the service. */
  dead = false;
  cutOffSince: number | null = null;
  lastRenewed = Date.now();
  readonly name: string;
  private readonly cloud: Cloud;
  private readonly random: () => number;
  constructor(name: string, cloud: Cloud, random: () => number) {
    this.name = name;
    this.cloud = cloud;
    this.random = random;
  }

  async step(service: ExecutorService, timeoutMs: number): Promise<void> {
    if (this.dead) return;
    const pool = service.pool;
    if (this.cutOffSince !== null) {
      // Self-fencing: cut off for the timeout less a margin, it stops its tasks (they report nothing).
      if (Date.now() - this.lastRenewed > timeoutMs * 0.7) this.tasks.clear();
      return;
    }
    try {
      if (!this.id) {
        const r = await pool.workers.register({
          name: this.name,
          queues: ['sim'],
          concurrency: 3,
          labels: {},
          runtime: 'process',
          version: 'sim',
          ...(this.token ? { previousToken: this.token } : {}),
        });
        this.id = r.worker.id;
        this.token = r.token;
        this.tasks.clear();
      }
      const beat = await pool.workers.heartbeat(this.id, {
        running: [...this.tasks].map(([workloadId, t]) => ({ workloadId, attempt: t.attempt })),
      });
      this.lastRenewed = Date.now();
      this.applyStops(beat.stop);
      const polled = await pool.leases.poll(this.id, { freeSlots: 3, waitMs: 0 });
      this.applyStops(polled.stop);
      for (const lease of polled.leases)
        this.tasks.set(lease.id, { attempt: lease.attempt, started: false, stop: null });
      for (const [workloadId, task] of [...this.tasks]) await this.advance(service, workloadId, task);
    } catch (error) {
      const status = (error as { status?: number }).status;
      if (status === 409 || status === 404) this.id = null; // written off: register again
    }
  }

  private applyStops(stops: StopOrder[]): void {
    for (const s of stops) {
      const task = this.tasks.get(s.workloadId);
      if (task && task.attempt === s.attempt) task.stop = s;
    }
  }

  private async advance(service: ExecutorService, workloadId: string, task: SimTask): Promise<void> {
    const report = (body: Record<string, unknown>) =>
      service.pool.leases.report(this.id!, { workloadId, attempt: task.attempt, ...body } as never);
    try {
      if (task.stop) {
        const state = task.stop.reason === 'cancelled' ? 'cancelled' : 'failed';
        await report({ state, reason: task.stop.reason, started: task.started });
        this.tasks.delete(workloadId);
      } else if (!task.started && this.random() < 0.3) {
        // As the real agent does: the start is confirmed by the service before the task runs.
        await report({ state: 'running' });
        task.started = true;
        this.cloud.starts.set(workloadId, (this.cloud.starts.get(workloadId) ?? 0) + 1);
      } else if (task.started && this.random() < 0.3) {
        await report(this.random() < 0.8 ? { state: 'succeeded', exitCode: 0 } : { state: 'failed', exitCode: 2 });
        this.tasks.delete(workloadId);
      }
    } catch (error) {
      const status = (error as { status?: number }).status;
      if (status === 409 || status === 404) this.tasks.delete(workloadId); // no longer ours: stop it
    }
  }

  kill(): void {
    this.dead = true;
    this.tasks.clear(); // they die with it (the lifeline)
  }
  revive(): void {
    this.dead = false;
    this.id = null; // a new process registers, with the token from its state directory
  }
}

const settings = {
  dataDir: 'memory://',
  logLevel: 'silent' as const,
  backends: ['pool' as const],
  reaperIntervalMs: 50,
  heartbeatIntervalMs: 100,
  heartbeatTimeoutMs: 800,
  leaseAckTimeoutMs: 400,
  instanceHeartbeatMs: 100,
  instanceTimeoutMs: 600,
  stopResendSeconds: 1,
  maxInfraRetries: 2,
  bootstrapTokens: [
    { name: 'admin', token: 'aft_propertytest001_propertytest-secret-0000', scopes: ['admin' as const] },
  ],
};

describe('the state machine under random interleavings', () => {
  for (const seed of SEEDS) {
    it(`seed ${seed}: only table transitions, no task started twice, everything ends`, async () => {
      const random = seeded(seed);
      const shared = await PgliteDb.open('memory://');
      const cloud = new Cloud(random);
      const logger = pino({ level: 'silent' });
      const open = async (name: string) => {
        const db = new MortalDb(shared);
        const service = await ExecutorService.attach(
          db,
          parseServiceConfig({ ...settings, instanceName: name }),
          logger,
          {
            backends: [new SimBackend(cloud, random)],
          },
        );
        return { db, service };
      };
      const instances = [await open('a'), await open('b')];
      const workers = [0, 1, 2].map((i) => new SimWorker(`w${i}`, cloud, random));
      const ids: string[] = [];
      let crashes = 0;
      try {
        const deadline = Date.now() + 12_000;
        let submitted = 0;
        while (Date.now() < deadline) {
          const live = instances[Math.floor(random() * instances.length)]!.service;
          const roll = random();
          if (submitted < WORKLOADS && roll < 0.35) {
            const timed = random() < 0.2;
            const r = await live
              .submit(
                workloadInput.parse({
                  key: `k${submitted}`,
                  command: ['true'],
                  queue: 'sim',
                  backend: random() < 0.5 ? 'pool' : 'batch',
                  ...(timed ? { timeouts: { pendingSeconds: 1 } } : {}),
                }),
              )
              .catch(() => null);
            if (r) {
              ids.push(r.workload.id);
              submitted++;
            }
          } else if (roll < 0.4 && ids.length > 0) {
            await live.cancel(ids[Math.floor(random() * ids.length)]!).catch(() => undefined);
          } else if (roll < 0.42) {
            const w = workers[Math.floor(random() * workers.length)]!;
            if (w.dead) w.revive();
            else w.kill();
          } else if (roll < 0.44) {
            const w = workers[Math.floor(random() * workers.length)]!;
            w.cutOffSince = w.cutOffSince === null ? Date.now() : null;
          } else if (roll < 0.455) {
            // An instance crashes (no clean shutdown) and a new one starts in its place.
            const victim = instances.shift()!;
            await victim.db.crash();
            await victim.service.close().catch(() => undefined);
            instances.push(await open(random() < 0.5 ? 'a' : `r${crashes}`));
            crashes++;
          }
          await cloud.step();
          for (const w of workers) await w.step(instances[0]!.service, settings.heartbeatTimeoutMs);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        // Calm: everyone alive and connected, until everything has ended.
        for (const w of workers) {
          if (w.dead) w.revive();
          w.cutOffSince = null;
        }
        const calm = Date.now() + 30_000;
        const service = instances[0]!.service;
        for (;;) {
          await cloud.step();
          for (const w of workers) await w.step(service, settings.heartbeatTimeoutMs);
          const states = await Promise.all(ids.map((id) => service.getWorkload(id)));
          if (states.every((w) => isTerminal(w.state))) break;
          if (Date.now() > calm) {
            // Which backend, and what the world knows of it, so a failure says where it stuck.
            const stuck = states
              .filter((w) => !isTerminal(w.state))
              .map(
                (w) =>
                  `${w.key}:${w.state}#${w.attempt} (${w.backend}, worker ${w.workerName ?? '-'}, ` +
                  `job ${cloud.jobs.get(`${w.id}#${w.attempt}`)?.state ?? 'none'}, ` +
                  `held by ${
                    workers
                      .filter((k) => k.tasks.has(w.id))
                      .map((k) => k.name)
                      .join(' ') || 'nobody'
                  })`,
              );
            throw new Error(`seed ${seed}: not finished after the calm period: ${stuck.join(', ')}`);
          }
          await new Promise((resolve) => setTimeout(resolve, 20));
        }

        // Every recorded change is a transition of the table.
        const { rows } = await shared.query<{ workload_id: string; state: WorkloadState; attempt: number; id: string }>(
          'SELECT workload_id, state, attempt, id FROM events ORDER BY workload_id, id',
        );
        const illegal: string[] = [];
        let previous: { workload_id: string; state: WorkloadState; attempt: number } | null = null;
        for (const e of rows) {
          if (previous?.workload_id === e.workload_id) {
            const edges = transitionsBetween(previous.state, e.state);
            const newAttempt = e.attempt === previous.attempt + 1;
            const ok =
              e.attempt === previous.attempt
                ? edges.some((t) => !('newAttempt' in TRANSITIONS[t]))
                : newAttempt && edges.some((t) => 'newAttempt' in TRANSITIONS[t]);
            // Adopting an attempt records its (unchanged) state again.
            const adopted = e.attempt === previous.attempt && e.state === previous.state;
            if (!ok && !adopted)
              illegal.push(`${e.workload_id}: ${previous.state}#${previous.attempt} → ${e.state}#${e.attempt}`);
          } else if (e.state !== 'queued') {
            illegal.push(`${e.workload_id}: first event ${e.state}`);
          }
          previous = e;
        }
        expect(illegal).toEqual([]);

        // No task ever started twice; every success is exactly one run.
        const twice = [...cloud.starts].filter(([, n]) => n > 1);
        expect(twice).toEqual([]);
        const final = await Promise.all(ids.map((id) => service.getWorkload(id)));
        for (const w of final.filter((x) => x.state === 'succeeded')) expect(cloud.starts.get(w.id)).toBe(1);
        const byState = final.reduce<Record<string, number>>(
          (m, w) => ({ ...m, [w.state]: (m[w.state] ?? 0) + 1 }),
          {},
        );
        console.info(
          `seed ${seed}: ${ids.length} workloads, ${crashes} instance crashes, ${rows.length} recorded changes, ` +
            `final ${JSON.stringify(byState)}, retries ${final.reduce((n, w) => n + w.attempt - 1, 0)}`,
        );
      } finally {
        for (const i of instances) await i.service.close().catch(() => undefined);
        await shared.close();
      }
    }, 90_000);
  }
});
