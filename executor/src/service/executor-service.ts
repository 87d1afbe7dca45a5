import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Autoscaler } from '../autoscaler/autoscaler.ts';
import type { PoolDriver } from '../autoscaler/drivers/driver.ts';
import { createDriver } from '../autoscaler/drivers/index.ts';
import { registerPoolGauges } from '../autoscaler/pool-metrics.ts';
import type { Backend, BackendHost, BackendUpdate } from '../backends/backend.ts';
import { BatchBackend } from '../backends/batch/batch-backend.ts';
import { batchConfigFromEnv } from '../backends/batch/batch-config.ts';
import { LocalBackend } from '../backends/local/local-backend.ts';
import { NomadBackend } from '../backends/nomad/nomad-backend.ts';
import { nomadConfigFromEnv } from '../backends/nomad/nomad-config.ts';
import { PoolBackend } from '../backends/pool/pool-backend.ts';
import type { PoolHost } from '../backends/pool/pool-host.ts';
import type { ServiceConfig } from '../config.ts';
import { isTerminal } from '../domain/states.ts';
import type { BackendName, ValidWorkloadInput, Workload } from '../domain/workload.ts';
import { ConflictError, InvalidInputError, NotFoundError } from '../errors.ts';
import { Batcher } from '../lib/batcher.ts';
import type { Db } from '../store/db.ts';
import type { FeedEvent } from '../store/events.ts';
import { readCursor, writeCursor } from '../store/instances.ts';
import { appendLogChunk, type LogStream, readLog, storedLength } from '../store/logs.ts';
import { migrate } from '../store/migrations.ts';
import { openDatabase } from '../store/open.ts';
import { type PoolSample, type PoolStatus, readPoolStatuses } from '../store/pool-status.ts';
import {
  getWorkload,
  type InsertResult,
  inFlightOwnedBy,
  insertWorkloads,
  type ListFilter,
  listWorkloads,
  type QueueStats,
  queueStats,
  requestCancel,
  withoutSealed,
} from '../store/workloads.ts';
import { type DirectClaim, Dispatcher } from './dispatcher.ts';
import { Feed } from './feed.ts';
import { Lifecycle } from './lifecycle.ts';
import { defaultInstanceName, Membership } from './membership.ts';
import { ServiceMetrics } from './metrics.ts';
import { Reaper } from './reaper.ts';
import { Reconciler } from './reconciler.ts';
import { SecretBox } from './secrets.ts';
import { Signals } from './signals.ts';
import { Stopper } from './stopper.ts';
import { type Principal, TokenService } from './tokens.ts';
import { waitingReason } from './waiting.ts';

export const VERSION = '0.1.0';

/** GET /v1/pools: one pool's configuration and last published status. */
export interface PoolSummary {
  name: string;
  queues: string[];
  driver: string;
  slotsPerWorker: number;
  minWorkers: number;
  maxWorkers: number;
  scaleOutCooldownSeconds: number;
  scaleInCooldownSeconds: number;
  hysteresisSlots: number;
  drainTimeoutSeconds: number;
  /** At a glance (null until the leader looked): desired and running workers, backlog slots. */
  desired: number | null;
  actual: number | null;
  backlog: number | null;
  status: (Omit<PoolStatus, 'pool' | 'history'> & { updatedAt: string }) | null;
  /** Desired and actual workers over the last hour, oldest first (the dashboard's chart). */
  history: PoolSample[];
}
export type { Principal } from './tokens.ts';

/**
 * The executor service: durable workloads, the dispatcher and its backends, the change feed, logs and
 * tokens, over one database, as one of possibly several instances (docs/architecture.md). HTTP lives in api/;
 * this class wires the parts together and holds the operations the API exposes, so they can be driven and
 * tested without HTTP.
 */
export class ExecutorService {
  readonly db: Db;
  readonly config: ServiceConfig;
  readonly logger: Logger;
  readonly metrics: ServiceMetrics;
  readonly feed: Feed;
  readonly tokens: TokenService;
  readonly membership: Membership;
  /** The pull-worker pool: the worker protocol and worker administration. */
  readonly pool: PoolBackend;
  readonly backends: ReadonlyMap<BackendName, Backend>;
  private readonly life: Lifecycle;
  private readonly signals: Signals;
  private readonly dispatcher: Dispatcher;
  private readonly stopper: Stopper;
  private readonly reaper: Reaper;
  private readonly submitBatcher: Batcher<ValidWorkloadInput, InsertResult>;
  readonly secrets: SecretBox;
  private readonly ownsDb: boolean;
  private reaperTimer: NodeJS.Timeout | null = null;
  /** The pools' autoscaler (config `pools`); its passes run on the leader only. */
  readonly autoscaler: Autoscaler | null;
  private readonly poolDrivers: ReadonlyMap<string, PoolDriver>;
  private autoscaleTimer: NodeJS.Timeout | null = null;
  private autoscaling: Promise<void> = Promise.resolve();
  private reaping: Promise<void> = Promise.resolve();
  private quiescing = false;
  private closed = false;

  private constructor(
    db: Db,
    config: ServiceConfig,
    logger: Logger,
    ownsDb: boolean,
    extra: readonly Backend[],
    drivers?: ReadonlyMap<string, PoolDriver>,
  ) {
    this.db = db;
    this.config = config;
    this.logger = logger;
    this.ownsDb = ownsDb;
    this.metrics = new ServiceMetrics(db);
    this.signals = new Signals(db, logger);
    this.feed = new Feed(db, this.signals, logger);
    this.tokens = new TokenService(db, config, logger);
    this.secrets = SecretBox.fromConfig(config);
    this.membership = new Membership(db, logger, {
      name: config.instanceName ?? defaultInstanceName(config.port),
      version: VERSION,
      heartbeatMs: config.instanceHeartbeatMs,
      timeoutMs: config.instanceTimeoutMs,
    });
    this.life = new Lifecycle({ db, config, logger, metrics: this.metrics, feed: this.feed, signals: this.signals });
    this.pool = new PoolBackend(this.poolHost());
    const enabled = new Map<BackendName, Backend>([['pool', this.pool]]);
    if (enabledBackends(config).includes('local')) {
      enabled.set(
        'local',
        new LocalBackend({
          dir: config.localRunDir ?? defaultLocalRunDir(config.dataDir),
          concurrency: config.localConcurrency,
          killGraceMs: config.localKillGraceMs,
          tickMs: 200,
        }),
      );
    }
    // AWS Batch reads its own settings (the names the stacks set) from the environment, validated here.
    if (enabledBackends(config).includes('batch')) enabled.set('batch', new BatchBackend(batchConfigFromEnv()));
    // Nomad reads NOMAD_* (as the nomad CLI does) and AIRFLEET_NOMAD_*, validated here.
    if (enabledBackends(config).includes('nomad')) enabled.set('nomad', new NomadBackend(nomadConfigFromEnv()));
    for (const backend of extra) enabled.set(backend.name, backend);
    this.backends = enabled;
    this.stopper = new Stopper(this.life, this.backends, this.membership.id, config.stopResendSeconds);
    this.dispatcher = new Dispatcher(
      this.life,
      [...this.backends.values()],
      {
        batchSize: config.dispatchBatchSize,
        submitConcurrency: config.submitConcurrency,
        idleMs: 1_000,
      },
      {
        instance: this.membership,
        openSecrets: (id, sealed) => this.secrets.open(id, sealed),
        stopsDue: () => this.stopper.wake(),
      },
    );
    this.reaper = new Reaper({
      life: this.life,
      pool: this.pool,
      backends: [...this.backends.values()],
      reconciler: new Reconciler(this.life, this.membership.id, config.instanceTimeoutMs),
      deliverStop: (w) => this.deliverStop(w),
    });
    this.submitBatcher = new Batcher({
      run: (inputs) => this.insertBatch(inputs),
      windowMs: config.submitBatchWindowMs,
      maxBatch: 500,
      maxParallel: Math.max(1, config.poolSize - 4),
    });
    this.poolDrivers =
      drivers ??
      new Map(
        config.pools.map((p) => [
          p.name,
          createDriver(p, {
            logger: logger.child({ pool: p.name, driver: p.driver.kind }),
            releaseWorker: async (w) => {
              await this.pool.workers.requestDrain(w.id);
            },
          }),
        ]),
      );
    this.autoscaler =
      config.pools.length > 0
        ? new Autoscaler({
            db,
            logger: logger.child({ component: 'autoscaler' }),
            pools: config.pools,
            drivers: this.poolDrivers,
            workers: this.pool.workers,
          })
        : null;
    if (this.autoscaler) registerPoolGauges(this.metrics.registry, db);
    this.membership.onLeadership((leader) => {
      if (!leader) this.autoscaler?.reset();
    });
    const waiters = this.life.queueWaiters;
    this.signals.on((s) => {
      if (s.kind === 'queue') {
        if (s.backend === 'pool') waiters.wake(`q:${s.queue}`, Math.max(1, s.count));
        else this.dispatcher.wake(s.backend);
      } else if (s.kind === 'worker') waiters.wake(`w:${s.workerId}`);
      else if (s.kind === 'slots') this.pool.leases.slotsFreed(s.workerId);
      else if (s.kind === 'log') this.life.logWaiters.wake(s.workloadId);
      else if (s.kind === 'dispatch') this.dispatcher.wake(s.backend);
      else if (s.kind === 'stop') this.stopper.wake();
    });
    this.signals.onResync(() => {
      waiters.wakeAll();
      this.life.logWaiters.wakeAll();
      this.dispatcher.wake();
      this.stopper.wake();
    });
  }

  /** Opens the database (PostgreSQL, or PGlite in `dataDir`), migrates it, and starts background work. */
  static async open(config: ServiceConfig, logger: Logger): Promise<ExecutorService> {
    const db = await openDatabase(config, logger);
    return ExecutorService.start(db, config, logger, true);
  }

  /**
   * A service over a database someone else opened and closes, with backends given by the caller besides the
   * configured ones (tests run several instances on one database, with backends of their own).
   */
  static async attach(
    db: Db,
    config: ServiceConfig,
    logger: Logger,
    options: { backends?: readonly Backend[]; poolDrivers?: ReadonlyMap<string, PoolDriver> } = {},
  ): Promise<ExecutorService> {
    return ExecutorService.start(db, config, logger, false, options.backends ?? [], options.poolDrivers);
  }

  private static async start(
    db: Db,
    config: ServiceConfig,
    logger: Logger,
    ownsDb: boolean,
    extra: readonly Backend[] = [],
    drivers?: ReadonlyMap<string, PoolDriver>,
  ): Promise<ExecutorService> {
    const applied = await migrate(db);
    if (applied.length > 0) logger.info({ applied }, 'applied database migrations');
    const service = new ExecutorService(db, config, logger, ownsDb, extra, drivers);
    await service.run();
    return service;
  }

  private async run(): Promise<void> {
    await this.signals.start();
    await this.tokens.bootstrap();
    await this.membership.start();
    for (const backend of this.backends.values()) await backend.start(this.hostFor(backend));
    // A leader at start settles what the previous run left in flight before anything new is dispatched.
    if (this.membership.isLeader()) await this.reaper.pass();
    this.dispatcher.start();
    this.stopper.start();
    this.feed.poke();
    this.scheduleReaper();
    this.scheduleAutoscale();
    this.logger.info(
      {
        instance: this.membership.id,
        leader: this.membership.isLeader(),
        database: this.db.kind === 'postgres' ? 'postgresql' : `embedded PGlite in ${this.config.dataDir}`,
      },
      'executor service ready',
    );
  }

  // ---------------------------------------------------------------- authentication

  authenticate(token: string): Promise<Principal | null> {
    return this.tokens.authenticate(token);
  }

  // ---------------------------------------------------------------- workloads

  /** Submits one workload; concurrent calls are grouped into one insert. */
  async submit(input: ValidWorkloadInput): Promise<InsertResult> {
    this.assertAcceptable([input]);
    return this.submitBatcher.add(input);
  }

  /** Refused before anything is stored: a backend this instance does not run, secrets with no key. */
  private assertAcceptable(inputs: readonly ValidWorkloadInput[]): void {
    if (inputs.some((w) => Object.keys(w.secretEnv).length > 0)) this.secrets.requireKey('secretEnv');
    this.assertBackendsEnabled(inputs);
  }

  /** A workload for a backend this instance does not run would wait forever: refuse it, nothing stored. */
  private assertBackendsEnabled(inputs: readonly ValidWorkloadInput[]): void {
    const bad = inputs.flatMap((w, i) => (this.backends.has(w.backend) ? [] : [{ index: i, backend: w.backend }]));
    if (bad.length === 0) return;
    const where = inputs.length > 1 ? ` (workloads ${bad.map((b) => b.index).join(', ')})` : '';
    throw new InvalidInputError(
      `backend: '${bad[0]!.backend}' is not enabled on this service${where}; enabled: ${[...this.backends.keys()].join(', ')}. ` +
        'Choose one of those, or start the service with it in AIRFLEET_BACKENDS.',
      { field: 'backend', items: bad },
    );
  }

  /** Submits many in one transaction; one conflicting item refuses the whole batch (nothing stored). */
  async submitBatch(inputs: ValidWorkloadInput[]): Promise<InsertResult[]> {
    this.assertAcceptable(inputs);
    const results = await this.insertBatch(inputs, true);
    return results as InsertResult[];
  }

  /**
   * Inserts a group of submissions. `atomic`: a conflict anywhere refuses all (the batch endpoint); otherwise
   * each item stands alone (single submissions grouped by the batcher), its conflict in its place.
   */
  private async insertBatch(inputs: ValidWorkloadInput[], atomic = false): Promise<Array<InsertResult | Error>> {
    const claims: DirectClaim[] = [];
    let results: Array<InsertResult | Error>;
    try {
      results = await this.db.tx(async (q) => {
        const out = await insertWorkloads(q, inputs, { maxInfraRetries: this.config.maxInfraRetries }, this.secrets);
        const conflict = out.findIndex((r) => r instanceof Error);
        if (atomic && conflict >= 0) {
          const error = out[conflict] as ConflictError;
          throw new ConflictError(`workloads[${conflict}]: ${error.message}`, {
            ...(error.details as object),
            index: conflict,
          });
        }
        // New work for a push backend with free room here: claim it in this transaction (service/dispatcher.ts).
        const pushBackends = new Set<BackendName>();
        for (const r of out) {
          if (!(r instanceof Error) && r.created && r.workload.backend !== 'pool') pushBackends.add(r.workload.backend);
        }
        for (const backend of pushBackends) {
          const claim = await this.dispatcher.claimDirect(q, backend);
          if (claim) claims.push(claim);
        }
        return out;
      });
    } catch (error) {
      for (const claim of claims) this.dispatcher.releaseDirect(claim);
      throw error;
    }
    // Claimed already: answered as it is now, and no wake-up is needed for it.
    const claimedNow = new Map<string, Workload>();
    for (const claim of claims) {
      for (const w of claim.claimed) claimedNow.set(w.id, withoutSealed(w));
      this.dispatcher.submitDirect(claim);
    }
    results = results.map((r) =>
      r instanceof Error || !claimedNow.has(r.workload.id) ? r : { ...r, workload: claimedNow.get(r.workload.id)! },
    );
    // One wake-up per backend and queue, however many arrived: workers parked on the queue, or the
    // dispatcher loop of a push backend.
    const perQueue = new Map<string, { queue: string; backend: BackendName; count: number }>();
    for (const r of results) {
      if (r instanceof Error || !r.created) continue;
      const { queue, backend } = r.workload;
      this.metrics.submitted.inc({ queue: this.metrics.queueLabel(queue), backend });
      if (claimedNow.has(r.workload.id)) continue;
      const group = perQueue.get(`${backend}/${queue}`) ?? { queue, backend, count: 0 };
      group.count++;
      perQueue.set(`${backend}/${queue}`, group);
    }
    if (perQueue.size > 0 || claimedNow.size > 0) this.feed.poke();
    for (const group of perQueue.values()) this.signals.emit({ kind: 'queue', ...group });
    return results;
  }

  async getWorkload(idOrKey: string): Promise<Workload> {
    const workload = await getWorkload(this.db, idOrKey);
    if (!workload) throw new NotFoundError('workload', idOrKey);
    return workload;
  }

  /** One workload, and, while it waits in a pool queue, why (no worker could ever take it, or all are busy). */
  async describeWorkload(idOrKey: string): Promise<Workload & { waiting?: string }> {
    const workload = await this.getWorkload(idOrKey);
    if (workload.state !== 'queued') return workload;
    const waiting = await waitingReason(this.db, workload);
    return waiting ? { ...workload, waiting } : workload;
  }

  listWorkloads(filter: ListFilter): Promise<Workload[]> {
    return listWorkloads(this.db, filter);
  }

  /**
   * Cancels: a queued workload at once; a live one by a stop request that its worker or backend carries out,
   * which then reports the end (recorded `cancelled`). The request is on the row: it survives a restart and
   * is repeated until the end is confirmed.
   */
  async cancel(idOrKey: string): Promise<Workload> {
    const current = await this.getWorkload(idOrKey);
    if (isTerminal(current.state)) return current;
    const updated = await requestCancel(this.db, current.id);
    if (!updated) return this.getWorkload(current.id);
    if (updated.state === 'cancelled') {
      this.metrics.finished.inc({
        queue: this.metrics.queueLabel(updated.queue),
        state: 'cancelled',
        reason: 'cancelled',
      });
      this.feed.poke();
    } else {
      this.deliverStop(updated);
    }
    return updated;
  }

  /** A stop was recorded: wake whoever carries it out (the worker's poll, or the owner's stopper). */
  private deliverStop(w: Workload): void {
    if (w.backend === 'pool') {
      if (w.workerId) this.signals.emit({ kind: 'worker', workerId: w.workerId });
      return;
    }
    this.stopper.wake();
    this.signals.emit({ kind: 'stop' });
  }

  async readLogs(input: {
    idOrKey: string;
    attempt?: number | undefined;
    stream: LogStream;
    offset: number;
    maxBytes: number;
    waitMs: number;
  }): Promise<{ data: Buffer; nextOffset: number; attempt: number; complete: boolean; state: Workload['state'] }> {
    const deadline = Date.now() + input.waitMs;
    for (;;) {
      const workload = await this.getWorkload(input.idOrKey);
      const attempt = input.attempt ?? workload.attempt;
      const slice = await readLog(this.db, workload.id, attempt, input.stream, input.offset, input.maxBytes);
      const finished = isTerminal(workload.state) || attempt < workload.attempt;
      const left = deadline - Date.now();
      if (slice.data.length > 0 || finished || left <= 0 || this.quiescing) {
        return { ...slice, attempt, complete: finished && slice.data.length === 0, state: workload.state };
      }
      // Follow mode: wait for the next chunk or the end of the workload.
      await this.life.logWaiters.park([workload.id], Math.min(left, 5_000)).promise;
    }
  }

  readFeed(after: number, limit: number, waitMs: number, workloadId?: string): Promise<FeedEvent[]> {
    return this.feed.read(after, this.quiescing ? 0 : limit, this.quiescing ? 0 : waitMs, workloadId);
  }

  queues(): Promise<QueueStats[]> {
    return queueStats(this.db);
  }

  /** The configured pools with what the leader's autoscaler last published for each (null: not yet). */
  async pools(): Promise<PoolSummary[]> {
    const statuses = await readPoolStatuses(this.db);
    return this.config.pools.map((p) => {
      const status = statuses.get(p.name);
      const { pool: _name, history, ...statusOnly } = status ?? { pool: '', history: [] };
      return {
        name: p.name,
        queues: p.queues,
        driver: p.driver.kind,
        slotsPerWorker: p.slotsPerWorker,
        minWorkers: p.minWorkers,
        maxWorkers: p.maxWorkers,
        scaleOutCooldownSeconds: p.scaleOutCooldownSeconds,
        scaleInCooldownSeconds: p.scaleInCooldownSeconds,
        hysteresisSlots: p.hysteresisSlots,
        drainTimeoutSeconds: p.drainTimeoutSeconds,
        desired: status?.desired ?? null,
        actual: status?.running ?? null,
        backlog: status ? status.queuedSlots + status.runningSlots : null,
        status: status ? (statusOnly as Omit<PoolStatus, 'pool' | 'history'> & { updatedAt: string }) : null,
        history: history ?? [],
      };
    });
  }

  // ---------------------------------------------------------------- background work

  private scheduleReaper(): void {
    if (this.closed) return;
    this.reaperTimer = setTimeout(() => {
      this.reaping = (this.membership.isLeader() ? this.reaper.pass() : Promise.resolve())
        .catch((error: Error) => this.logger.warn({ err: error.message }, 'reaper pass failed; will retry'))
        .finally(() => this.scheduleReaper());
    }, this.config.reaperIntervalMs);
  }

  private scheduleAutoscale(): void {
    const autoscaler = this.autoscaler;
    if (this.closed || !autoscaler) return;
    this.autoscaleTimer = setTimeout(() => {
      this.autoscaling = (this.membership.isLeader() && !this.quiescing ? autoscaler.pass() : Promise.resolve())
        .catch((error: Error) => this.logger.warn({ err: error.message }, 'autoscaler pass failed; will retry'))
        .finally(() => this.scheduleAutoscale());
    }, this.config.autoscaleIntervalMs);
  }

  /** One autoscaler pass now, whether or not this instance leads (tests; the timer runs it on the leader). */
  async autoscale(): Promise<void> {
    await this.autoscaler?.pass();
  }

  /** One leader pass now (tests; the timer runs it every `reaperIntervalMs`). */
  reap(): Promise<void> {
    return this.reaper.pass();
  }

  // ---------------------------------------------------------------- backends

  /** What a backend may do to the service: report what its watcher saw, store logs, list its attempts. */
  private hostFor(backend: Backend): BackendHost {
    return {
      logger: this.logger.child({ backend: backend.name }),
      instanceId: this.membership.id,
      update: (update) => this.applyBackendUpdates(backend, [update]),
      updateMany: (updates) => this.applyBackendUpdates(backend, updates),
      appendLog: async (workloadId, attempt, stream, offset, data) => {
        const length = await appendLogChunk(this.db, { workloadId, attempt, stream, offset, data });
        this.signals.emit({ kind: 'log', workloadId });
        return length;
      },
      logLength: (workloadId, attempt, stream) => storedLength(this.db, workloadId, attempt, stream),
      inFlight: async () =>
        (await inFlightOwnedBy(this.db, backend.name, this.membership.id)).map((r) => ({
          workloadId: r.workloadId,
          attempt: r.attempt,
          state: r.state,
          ref: r.ref,
          claimedAt: r.claimedAt,
        })),
      cursor: {
        get: (name) => readCursor(this.db, backend.name, name),
        set: (name, value) => writeCursor(this.db, backend.name, name, value),
      },
    };
  }

  private poolHost(): PoolHost {
    return {
      ...this.hostFor({ name: 'pool' } as Backend),
      db: this.db,
      settings: this.config,
      queueWaiters: this.life.queueWaiters,
      metrics: this.metrics,
      life: this.life,
      wakeWorker: (workerId) => this.signals.emit({ kind: 'worker', workerId }),
      wakeQueue: (queue, count) => this.signals.emit({ kind: 'queue', queue, backend: 'pool', count }),
      pokeFeed: () => this.feed.poke(),
      logWritten: (workloadId) => this.signals.emit({ kind: 'log', workloadId }),
      forgetWorkerToken: (workerId) => this.tokens.forgetWorker(workerId),
      stopping: () => this.quiescing,
      openSecrets: (id, sealed) => this.secrets.open(id, sealed),
    };
  }

  /**
   * A push backend's watcher saw changes. Updates about other attempts, finished ones, or that change
   * nothing are dropped after one read for the whole batch.
   */
  private async applyBackendUpdates(backend: Backend, updates: readonly BackendUpdate[]): Promise<void> {
    if (updates.length === 0) return;
    const { rows } = await this.db.query<{
      id: string;
      attempt: number;
      state: Workload['state'];
      backend_ref: string | null;
    }>('SELECT id, attempt, state, backend_ref FROM workloads WHERE id = ANY($1::uuid[])', [
      [...new Set(updates.map((u) => u.workloadId))],
    ]);
    const current = new Map(rows.map((r) => [r.id, r]));
    let capacity = false;
    for (const update of updates) {
      const row = current.get(update.workloadId);
      if (!row || row.attempt !== update.attempt || isTerminal(row.state) || row.state === update.state) {
        this.logger.debug({ update, state: row?.state, attempt: row?.attempt }, 'dropped a stale backend update');
        continue;
      }
      // Logs first: when the feed says "finished", the whole log is already readable.
      if (update.state !== 'running') {
        await backend.fetchLogs({ workloadId: row.id, attempt: row.attempt, ref: row.backend_ref });
      }
      const result = await this.life.apply(update, null);
      if (result) {
        row.state = result.state;
        if (result.state !== 'running') capacity = true;
      }
    }
    if (capacity) this.dispatcher.wake(backend.name);
  }

  // ---------------------------------------------------------------- stopping

  /**
   * The first step of a shutdown, before the HTTP server stops: no more leases are handed out and no more
   * push work is claimed, and parked long-polls answer now (empty), so workers go to a peer or wait for the
   * successor rather than for a lease from an instance that is about to go.
   */
  async quiesce(): Promise<void> {
    if (this.quiescing) return;
    this.quiescing = true;
    this.life.queueWaiters.wakeAll();
    this.life.logWaiters.wakeAll();
    this.feed.wakeAll();
    await this.dispatcher.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.quiesce();
    this.closed = true;
    if (this.reaperTimer) clearTimeout(this.reaperTimer);
    if (this.autoscaleTimer) clearTimeout(this.autoscaleTimer);
    await this.reaping;
    await this.autoscaling;
    for (const driver of this.poolDrivers.values()) await driver.close?.();
    await this.stopper.close();
    for (const backend of this.backends.values()) await backend.close();
    // Only now do peers take this instance for gone and adopt what it owned.
    await this.membership.stop();
    if (this.ownsDb) await this.db.close();
  }
}

/**
 * The `local` backend runs tasks on this host, so it only makes sense with one service instance: it is on
 * by default with the embedded database (one instance by nature) and off with PostgreSQL unless asked for.
 */
export function enabledBackends(config: ServiceConfig): BackendName[] {
  return config.backends ?? (config.databaseUrl ? ['pool'] : ['pool', 'local']);
}

/** Without a data directory on disk (an in-memory database), local runs go under the temp directory. */
function defaultLocalRunDir(dataDir: string): string {
  return dataDir.startsWith('memory://')
    ? join(tmpdir(), `airfleet-local-runs-${randomUUID()}`)
    : join(dataDir, 'local-runs');
}
