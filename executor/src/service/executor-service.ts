import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ServiceConfig } from '../config.ts';
import { pickLeases } from '../domain/slots.ts';
import { decideAfterFailure, type FailureReason, isTerminal } from '../domain/states.ts';
import type { ValidWorkloadInput, Workload } from '../domain/workload.ts';
import { ConfigError, ConflictError, NotFoundError } from '../errors.ts';
import type { Db, Queryable } from '../store/db.ts';
import { type FeedEvent, pruneEvents } from '../store/events.ts';
import { appendLogChunk, type LogStream, readLog } from '../store/logs.ts';
import { migrate } from '../store/migrations.ts';
import { PostgresDb } from '../store/postgres.ts';
import {
  type ApiToken,
  countApiTokens,
  createApiToken,
  findApiToken,
  hashSecret,
  listApiTokens,
  newSecret,
  parseToken,
  revokeApiToken,
  type Scope,
  secretMatches,
} from '../store/tokens.ts';
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
  workerAuth,
} from '../store/workers.ts';
import {
  finishAttempt,
  getWorkload,
  type InsertResult,
  insertWorkloads,
  type ListFilter,
  listWorkloads,
  lockLeaseCandidates,
  markLeased,
  markRunning,
  type Outcome,
  pastPendingDeadline,
  type QueueStats,
  queueStats,
  requestCancel,
  requeueAsNewAttempt,
  workloadsOfWorker,
} from '../store/workloads.ts';
import { Batcher } from './batcher.ts';
import { Feed } from './feed.ts';
import { ServiceMetrics } from './metrics.ts';
import { Signals } from './signals.ts';
import { WaiterSet } from './waiters.ts';

export const VERSION = '0.1.0';

export type Principal =
  | { kind: 'api'; tokenId: string; name: string; scopes: Scope[] }
  | { kind: 'worker'; workerId: string };

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

const TOKEN_CACHE_MS = 10_000;

/**
 * The executor service: durable workloads, pull-worker leases, the change feed, logs and tokens, over one
 * database. HTTP lives in api/; this class holds the behaviour so it can be driven and tested without it.
 */
export class ExecutorService {
  readonly db: Db;
  readonly config: ServiceConfig;
  readonly logger: Logger;
  readonly metrics: ServiceMetrics;
  readonly feed: Feed;
  private readonly signals: Signals;
  private readonly queueWaiters = new WaiterSet<string>();
  private readonly logWaiters = new WaiterSet<string>();
  private readonly submitBatcher: Batcher<ValidWorkloadInput, InsertResult>;
  private readonly tokenCache = new Map<string, { principal: Principal; hash: string; until: number }>();
  private reaperTimer: NodeJS.Timeout | null = null;
  private lastPrune = 0;
  private closed = false;

  private constructor(db: Db, config: ServiceConfig, logger: Logger) {
    this.db = db;
    this.config = config;
    this.logger = logger;
    this.metrics = new ServiceMetrics(db);
    this.signals = new Signals(db, logger);
    this.feed = new Feed(db, this.signals, logger);
    this.submitBatcher = new Batcher({
      run: (inputs) => this.insertBatch(inputs),
      windowMs: config.submitBatchWindowMs,
      maxBatch: 500,
      maxParallel: Math.max(1, config.poolSize - 4),
    });
    this.signals.on((s) => {
      if (s.kind === 'queue') this.queueWaiters.wake(`q:${s.queue}`, Math.max(1, s.count));
      else if (s.kind === 'worker') this.queueWaiters.wake(`w:${s.workerId}`);
      else if (s.kind === 'log') this.logWaiters.wake(s.workloadId);
    });
    this.signals.onResync(() => {
      this.queueWaiters.wakeAll();
      this.logWaiters.wakeAll();
    });
  }

  /** Opens the database (PostgreSQL, or PGlite in `dataDir`), migrates it, and starts background work. */
  static async open(config: ServiceConfig, logger: Logger): Promise<ExecutorService> {
    const db: Db = config.databaseUrl
      ? new PostgresDb({ url: config.databaseUrl, poolSize: config.poolSize, logger })
      : // Loaded only when used: PGlite's module is large, and a PostgreSQL deployment never needs it.
        await (await import('../store/pglite.ts')).PgliteDb.open(
          config.dataDir.startsWith('memory://') ? config.dataDir : join(config.dataDir, 'pgdata'),
        );
    const applied = await migrate(db);
    if (applied.length > 0) logger.info({ applied }, 'applied database migrations');
    const service = new ExecutorService(db, config, logger);
    await service.start();
    return service;
  }

  private async start(): Promise<void> {
    await this.signals.start();
    await forgiveSilenceAfterRestart(this.db);
    await this.bootstrapTokens();
    this.feed.poke();
    this.scheduleReaper();
    this.logger.info(
      { database: this.db.kind === 'postgres' ? 'postgresql' : `embedded PGlite in ${this.config.dataDir}` },
      'executor service ready',
    );
  }

  private async bootstrapTokens(): Promise<void> {
    for (const t of this.config.bootstrapTokens) {
      const parsed = parseToken(t.token);
      if (parsed?.prefix !== 'aft') {
        throw new ConfigError(
          `bootstrap token '${t.name}' is not an airfleet API token (aft_<id>_<secret>); generate one with \`airfleet token generate\``,
        );
      }
      await this.db.query(
        `INSERT INTO api_tokens (id, name, hash, scopes) VALUES ($1, $2, $3, $4::text[])
         ON CONFLICT (id) DO UPDATE SET hash = EXCLUDED.hash, scopes = EXCLUDED.scopes, revoked_at = NULL`,
        [parsed.id, t.name, hashSecret(parsed.secret), t.scopes],
      );
    }
    if ((await countApiTokens(this.db)) > 0) return;
    // First start with no token at all: make an admin token and leave it where only the owner can read
    // it, instead of printing a secret into logs.
    const { token } = await createApiToken(this.db, 'bootstrap-admin', ['admin']);
    mkdirSync(this.config.dataDir, { recursive: true });
    const file = join(this.config.dataDir, 'admin.token');
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    this.logger.info({ file }, 'created the first admin token; the CLI reads it from this file');
  }

  // ---------------------------------------------------------------- authentication

  /** Resolves a bearer token to who is calling, or null. Verified tokens are cached for 10 s. */
  async authenticate(token: string): Promise<Principal | null> {
    const parsed = parseToken(token);
    if (!parsed) return null;
    const cached = this.tokenCache.get(parsed.id);
    if (cached && cached.until > Date.now()) return secretMatches(parsed.secret, cached.hash) ? cached.principal : null;
    let principal: Principal | null = null;
    let hash: string | null = null;
    if (parsed.prefix === 'aft') {
      const record = await findApiToken(this.db, parsed.id);
      if (record) {
        hash = record.hash;
        principal = { kind: 'api', tokenId: parsed.id, name: record.name, scopes: record.scopes };
      }
    } else {
      const workerId = uuidFromCompact(parsed.id);
      const record = workerId ? await workerAuth(this.db, workerId) : null;
      if (record && workerId) {
        hash = record.tokenHash;
        principal = { kind: 'worker', workerId };
      }
    }
    if (!principal || !hash || !secretMatches(parsed.secret, hash)) return null;
    this.tokenCache.set(parsed.id, { principal, hash, until: Date.now() + TOKEN_CACHE_MS });
    return principal;
  }

  async createToken(name: string, scopes: Scope[]): Promise<{ token: string; record: ApiToken }> {
    return createApiToken(this.db, name, scopes);
  }

  listTokens(): Promise<ApiToken[]> {
    return listApiTokens(this.db);
  }

  async revokeToken(id: string): Promise<void> {
    if (!(await revokeApiToken(this.db, id))) throw new NotFoundError('token', id);
    this.tokenCache.delete(id);
  }

  // ---------------------------------------------------------------- workloads

  /** Submits one workload; concurrent calls are grouped into one insert. */
  submit(input: ValidWorkloadInput): Promise<InsertResult> {
    return this.submitBatcher.add(input);
  }

  /** Submits many in one transaction. */
  submitBatch(inputs: ValidWorkloadInput[]): Promise<InsertResult[]> {
    return this.insertBatch(inputs);
  }

  private async insertBatch(inputs: ValidWorkloadInput[]): Promise<InsertResult[]> {
    const results = await this.db.tx((q) =>
      insertWorkloads(q, inputs, { maxInfraRetries: this.config.maxInfraRetries }),
    );
    const perQueue = new Map<string, number>();
    for (const r of results) {
      if (!r.created) continue;
      this.metrics.submitted.inc({ queue: r.workload.queue, backend: r.workload.backend });
      perQueue.set(r.workload.queue, (perQueue.get(r.workload.queue) ?? 0) + 1);
    }
    if (perQueue.size > 0) this.feed.poke();
    for (const [queue, count] of perQueue) this.signals.emit({ kind: 'queue', queue, count });
    return results;
  }

  async getWorkload(idOrKey: string): Promise<Workload> {
    const workload = await getWorkload(this.db, idOrKey);
    if (!workload) throw new NotFoundError('workload', idOrKey);
    return workload;
  }

  listWorkloads(filter: ListFilter): Promise<Workload[]> {
    return listWorkloads(this.db, filter);
  }

  /** Cancels: a queued workload at once; a leased or running one through its worker. */
  async cancel(idOrKey: string): Promise<Workload> {
    const current = await this.getWorkload(idOrKey);
    if (isTerminal(current.state)) return current;
    const updated = await requestCancel(this.db, current.id);
    if (!updated) return this.getWorkload(current.id);
    if (updated.state === 'cancelled') {
      this.metrics.finished.inc({ queue: updated.queue, state: 'cancelled', reason: 'cancelled' });
      this.feed.poke();
    } else if (updated.workerId) {
      this.signals.emit({ kind: 'worker', workerId: updated.workerId });
    }
    return updated;
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
      if (slice.data.length > 0 || finished || left <= 0) {
        return { ...slice, attempt, complete: finished && slice.data.length === 0, state: workload.state };
      }
      // Follow mode: wait for the next chunk or the end of the workload.
      await this.logWaiters.park([workload.id], Math.min(left, 5_000)).promise;
    }
  }

  readFeed(after: number, limit: number, waitMs: number): Promise<FeedEvent[]> {
    return this.feed.read(after, limit, waitMs);
  }

  queues(): Promise<QueueStats[]> {
    return queueStats(this.db);
  }

  // ---------------------------------------------------------------- workers (admin side)

  listWorkers(): Promise<Worker[]> {
    return listWorkers(this.db);
  }

  async getWorker(idOrName: string): Promise<Worker> {
    const worker = await getWorker(this.db, idOrName);
    if (!worker) throw new NotFoundError('worker', idOrName);
    return worker;
  }

  async setMaintenance(idOrName: string, on: boolean, comment: string | null): Promise<Worker> {
    const worker = await setMaintenance(this.db, idOrName, on, comment);
    if (!worker) throw new NotFoundError('worker', idOrName);
    this.signals.emit({ kind: 'worker', workerId: worker.id });
    return this.getWorker(worker.id);
  }

  async updateWorker(
    idOrName: string,
    change: { addQueues?: string[]; removeQueues?: string[]; concurrency?: number },
  ): Promise<Worker> {
    const worker = await updateWorkerConfig(this.db, idOrName, change);
    if (!worker) throw new NotFoundError('worker', idOrName);
    this.signals.emit({ kind: 'worker', workerId: worker.id });
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
    const { worker, previousId } = await this.db.tx(async (q) => {
      const result = await upsertWorker(q, { ...input, tokenHash: hashSecret(secret) });
      // The previous incarnation of this worker is gone: settle what it held.
      if (result.previousId) await this.settleWorkloadsOfGoneWorker(q, result.previousId, 'worker re-registered');
      return result;
    });
    if (previousId) {
      this.tokenCache.delete(previousId.replaceAll('-', ''));
      this.afterBulkChange();
    }
    this.logger.info(
      { worker: worker.name, queues: worker.queues, concurrency: worker.concurrency },
      'worker registered',
    );
    return { worker, token: `afw_${worker.id.replaceAll('-', '')}_${secret}` };
  }

  async heartbeat(
    workerId: string,
    input: { metrics?: WorkerMetrics | undefined; running: RunningEntry[]; draining?: boolean | undefined },
  ): Promise<PollResult> {
    const beat = await heartbeat(this.db, workerId, {
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
      if (known.has(`${h.id}#${h.attempt}`) || Date.now() - h.sinceMs < this.config.leaseAckTimeoutMs) continue;
      const w = await getWorkload(this.db, h.id);
      if (!w || w.attempt !== h.attempt || isTerminal(w.state)) continue;
      await this.db.tx((q) =>
        this.failAttempt(q, w, 'lost', w.state === 'running', `worker ${workerId} no longer reports this task`),
      );
      changed = true;
    }
    if (changed) this.afterBulkChange();
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
    for (;;) {
      const started = process.hrtime.bigint();
      const { result, keys } = await this.db.tx(async (q) => {
        const worker = await lockWorkerForPoll(q, workerId);
        if (!worker) throw new NotFoundError('worker', workerId);
        if (worker.state === 'lost' || worker.state === 'offline') throw goneError(worker);
        const config = view(worker);
        const accepting = !worker.maintenance && !worker.draining;
        const keys = [`w:${workerId}`, ...(accepting ? worker.queues.map((name) => `q:${name}`) : [])];
        // The worker hung up (it is stopping): leasing now would hand work to nobody.
        if (signal?.aborted) return { result: { leases: [], cancel: [], config }, keys };
        const cancel = worker.hasCancel ? await this.cancelsFor(q, workerId) : [];
        // Slots are accounted here, not by the worker: a slot is free the moment the service records the
        // end of the task that held it, and that wakes this poll (see afterChange), so the worker never
        // hangs up to re-poll (which could strand a lease granted while its reply had nowhere to go).
        const free = Math.max(0, worker.concurrency - worker.usedSlots);
        const leases = accepting && free > 0 ? await this.leaseWithin(q, worker, free) : [];
        return { result: { leases, cancel, config }, keys };
      });
      if (result.leases.length > 0) this.afterLease(result.leases, started);
      const known = input.known;
      const configChanged =
        known !== undefined &&
        (known.maintenance !== result.config.maintenance ||
          known.concurrency !== result.config.concurrency ||
          (known.queues ?? []).join(',') !== result.config.queues.join(','));
      const left = deadline - Date.now();
      if (result.leases.length > 0 || result.cancel.length > 0 || configChanged || left <= 0 || signal?.aborted) {
        return result;
      }
      const waiter = this.queueWaiters.park(keys, left);
      signal?.addEventListener('abort', () => waiter.notify(), { once: true });
      // Nothing woke it: nothing changed for this worker, so answer without another round trip (2,000
      // idle workers time out 100 times a second).
      if ((await waiter.promise) === 'timeout') return result;
    }
  }

  /** Inside the poll's transaction: lock candidates (SKIP LOCKED), choose what fits, mark them pending. */
  private async leaseWithin(q: Queryable, worker: Worker, free: number): Promise<Workload[]> {
    const candidates = await lockLeaseCandidates(q, worker.queues, free, free);
    if (candidates.length === 0) return [];
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
    return marked.sort((a, b) => rank.get(a.id)! - rank.get(b.id)!);
  }

  private afterLease(leased: Workload[], started: bigint): void {
    this.metrics.leaseLatency.observe(Number(process.hrtime.bigint() - started) / 1e9);
    const now = Date.now();
    for (const w of leased)
      this.metrics.dispatchLatency.observe({ queue: w.queue }, (now - Date.parse(w.queuedAt)) / 1000);
    this.feed.poke();
  }

  /** A worker reports progress or the end of an attempt. Reports are fenced and idempotent. */
  async report(workerId: string, report: Report): Promise<Workload> {
    const current = await this.getWorkload(report.workloadId);
    if (current.attempt !== report.attempt || current.workerId !== workerId) {
      throw new ConflictError(
        `report for attempt ${report.attempt} of ${report.workloadId} is stale: the workload is on attempt ${current.attempt}${
          current.workerId === workerId ? '' : ' of another worker'
        }; drop it`,
        { attempt: current.attempt },
      );
    }
    const sameAsNow =
      current.state === report.state ||
      (report.state === 'failed' && current.state === 'queued' && current.attempt > report.attempt);
    if (sameAsNow) return current; // a retried report whose first reply was lost
    let result: Workload | null;
    if (report.state === 'running') {
      result = await markRunning(this.db, current.id, report.attempt, workerId);
    } else if (report.state === 'failed') {
      result = await this.db.tx((q) =>
        this.failAttempt(
          q,
          current,
          report.reason ?? 'task_error',
          report.started ?? true,
          report.message ?? null,
          report.exitCode,
        ),
      );
    } else {
      // One statement, so no transaction around it: the hot path of every task that ends.
      const outcome: Outcome =
        report.state === 'succeeded'
          ? { state: 'succeeded', exitCode: report.exitCode ?? 0 }
          : {
              state: 'cancelled',
              reason: 'cancelled',
              exitCode: report.exitCode ?? null,
              message: report.message ?? null,
            };
      result = await finishAttempt(this.db, current.id, report.attempt, workerId, outcome);
    }
    if (!result) {
      const now = await this.getWorkload(report.workloadId);
      if (isTerminal(now.state)) return now;
      throw new ConflictError(`cannot move workload ${current.id} from ${now.state} to ${report.state}`, {
        state: now.state,
      });
    }
    this.afterChange(result);
    return result;
  }

  /**
   * Ends an attempt as failed, or requeues it as a new attempt when the failure happened before the task
   * started and the workload has infrastructure retries left.
   */
  private async failAttempt(
    q: Queryable,
    w: Workload,
    reason: FailureReason,
    started: boolean,
    message: string | null,
    exitCode?: number | null,
  ): Promise<Workload | null> {
    const decision = decideAfterFailure({
      reason,
      started,
      attempt: w.attempt,
      infraRetries: w.infraRetries,
      maxInfraRetries: w.maxInfraRetries,
    });
    if (decision.kind === 'retry' && !w.cancelRequested) {
      this.logger.info(
        { workload: w.id, attempt: w.attempt, reason },
        'failure before start: retrying as a new attempt',
      );
      return requeueAsNewAttempt(q, w.id, w.attempt, reason, message ?? reason);
    }
    const outcome: Outcome = w.cancelRequested
      ? { state: 'cancelled', reason: 'cancelled', message }
      : { state: 'failed', reason, exitCode: exitCode ?? null, message };
    return finishAttempt(q, w.id, w.attempt, w.workerId, outcome);
  }

  private afterChange(w: Workload): void {
    this.feed.poke();
    if (w.workerId && (isTerminal(w.state) || w.state === 'queued'))
      this.signals.emit({ kind: 'worker', workerId: w.workerId });
    this.signals.emit({ kind: 'log', workloadId: w.id }); // wakes log followers here and in peers
    if (isTerminal(w.state)) this.metrics.finished.inc({ queue: w.queue, state: w.state, reason: w.reason ?? '' });
    if (w.state === 'queued') this.signals.emit({ kind: 'queue', queue: w.queue, count: 1 });
  }

  /** After changes to many workloads at once: wake everything that might care. */
  private afterBulkChange(): void {
    this.feed.poke();
    this.queueWaiters.wakeAll();
    this.logWaiters.wakeAll();
  }

  async appendLog(
    workerId: string,
    chunk: { workloadId: string; attempt: number; stream: LogStream; offset: number; data: Buffer },
  ): Promise<void> {
    const { rows } = await this.db.query<{ worker_id: string | null; attempt: number }>(
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
    await appendLogChunk(this.db, chunk);
    this.signals.emit({ kind: 'log', workloadId: chunk.workloadId });
  }

  /** A worker leaving cleanly: it should hold nothing; whatever it still holds is settled as lost. */
  async deregister(workerId: string): Promise<void> {
    await this.db.tx(async (q) => {
      await this.settleWorkloadsOfGoneWorker(q, workerId, 'worker went offline');
      await setWorkerState(q, workerId, 'offline');
    });
    this.tokenCache.delete(workerId.replaceAll('-', ''));
    this.afterBulkChange();
  }

  private async settleWorkloadsOfGoneWorker(q: Queryable, workerId: string, why: string): Promise<void> {
    for (const w of await workloadsOfWorker(q, workerId)) {
      await this.failAttempt(q, w, 'lost', w.state === 'running', why);
    }
  }

  // ---------------------------------------------------------------- background work

  private scheduleReaper(): void {
    if (this.closed) return;
    this.reaperTimer = setTimeout(() => {
      this.reap()
        .catch((error: Error) => this.logger.warn({ err: error.message }, 'reaper pass failed; will retry'))
        .finally(() => this.scheduleReaper());
    }, this.config.reaperIntervalMs);
  }

  /** One pass: silent workers become lost, passed pending deadlines fail, old feed entries go. */
  async reap(): Promise<void> {
    for (const workerId of await silentWorkers(this.db, this.config.heartbeatTimeoutMs / 1000)) {
      await this.db.tx(async (q) => {
        await setWorkerState(q, workerId, 'lost');
        await this.settleWorkloadsOfGoneWorker(q, workerId, `no heartbeat for ${this.config.heartbeatTimeoutMs} ms`);
      });
      this.tokenCache.delete(workerId.replaceAll('-', ''));
      this.logger.warn({ workerId }, 'worker lost: no heartbeat within the timeout; its tasks were settled');
      this.afterBulkChange();
    }
    const expired = await pastPendingDeadline(this.db, 500);
    for (const w of expired) {
      const result = await this.db.tx((q) =>
        this.failAttempt(
          q,
          w,
          'unschedulable',
          false,
          `not started within pendingSeconds=${w.timeouts.pendingSeconds}`,
        ),
      );
      if (result) this.afterChange(result);
    }
    this.feed.poke();
    if (Date.now() - this.lastPrune > 60_000) {
      this.lastPrune = Date.now();
      await pruneEvents(this.db, this.config.eventRetentionSeconds);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reaperTimer) clearTimeout(this.reaperTimer);
    this.queueWaiters.wakeAll();
    this.logWaiters.wakeAll();
    await this.db.close();
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

function uuidFromCompact(compact: string): string | null {
  if (!/^[0-9a-f]{32}$/.test(compact)) return null;
  return `${compact.slice(0, 8)}-${compact.slice(8, 12)}-${compact.slice(12, 16)}-${compact.slice(16, 20)}-${compact.slice(20)}`;
}
