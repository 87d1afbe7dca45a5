import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Backend, BackendHost, BackendUpdate } from '../backends/backend.ts';
import { LocalBackend } from '../backends/local/local-backend.ts';
import { PoolBackend } from '../backends/pool/pool-backend.ts';
import type { ServiceConfig } from '../config.ts';
import { isTerminal } from '../domain/states.ts';
import type { BackendName, ValidWorkloadInput, Workload } from '../domain/workload.ts';
import { ConfigError, InvalidInputError, NotFoundError } from '../errors.ts';
import type { Db } from '../store/db.ts';
import { type FeedEvent, pruneEvents } from '../store/events.ts';
import { appendLogChunk, type LogStream, readLog, storedLength } from '../store/logs.ts';
import { migrate } from '../store/migrations.ts';
import { PostgresDb } from '../store/postgres.ts';
import {
  type ApiToken,
  countApiTokens,
  createApiToken,
  findApiToken,
  hashSecret,
  listApiTokens,
  parseToken,
  revokeApiToken,
  type Scope,
  secretMatches,
} from '../store/tokens.ts';
import { workerAuth } from '../store/workers.ts';
import {
  finishAttempt,
  getWorkload,
  type InsertResult,
  inFlightOf,
  insertWorkloads,
  type ListFilter,
  listWorkloads,
  markSubmitted,
  pastPendingDeadline,
  pastRunDeadline,
  type QueueStats,
  queueStats,
  releaseClaim,
  requestCancel,
} from '../store/workloads.ts';
import { Batcher } from './batcher.ts';
import { Dispatcher } from './dispatcher.ts';
import { Feed } from './feed.ts';
import { Lifecycle } from './lifecycle.ts';
import { ServiceMetrics } from './metrics.ts';
import { Signals } from './signals.ts';

export const VERSION = '0.1.0';

export type Principal =
  | { kind: 'api'; tokenId: string; name: string; scopes: Scope[] }
  | { kind: 'worker'; workerId: string };

const TOKEN_CACHE_MS = 10_000;

/**
 * The executor service: durable workloads, the dispatcher and its backends, the change feed, logs and
 * tokens, over one database. HTTP lives in api/; this class holds the behaviour so it can be driven and
 * tested without it.
 */
export class ExecutorService {
  readonly db: Db;
  readonly config: ServiceConfig;
  readonly logger: Logger;
  readonly metrics: ServiceMetrics;
  readonly feed: Feed;
  /** The pull-worker pool: the worker protocol and worker administration. */
  readonly pool: PoolBackend;
  readonly backends: ReadonlyMap<BackendName, Backend>;
  private readonly life: Lifecycle;
  private readonly signals: Signals;
  private readonly dispatcher: Dispatcher;
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
    this.life = new Lifecycle({ db, config, logger, metrics: this.metrics, feed: this.feed, signals: this.signals });
    this.pool = new PoolBackend(this.life, (workerId) => this.tokenCache.delete(workerId.replaceAll('-', '')));
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
    this.backends = enabled;
    this.dispatcher = new Dispatcher(this.life, [...this.backends.values()], {
      batchSize: config.dispatchBatchSize,
      submitConcurrency: config.submitConcurrency,
      idleMs: 1_000,
    });
    this.submitBatcher = new Batcher({
      run: (inputs) => this.insertBatch(inputs),
      windowMs: config.submitBatchWindowMs,
      maxBatch: 500,
      maxParallel: Math.max(1, config.poolSize - 4),
    });
    const waiters = this.life.queueWaiters;
    this.signals.on((s) => {
      if (s.kind === 'queue') {
        if (s.backend === 'pool') waiters.wake(`q:${s.queue}`, Math.max(1, s.count));
        else this.dispatcher.wake(s.backend);
      } else if (s.kind === 'worker') waiters.wake(`w:${s.workerId}`);
      else if (s.kind === 'slots') waiters.wake(`s:${s.workerId}`);
      else if (s.kind === 'log') this.life.logWaiters.wake(s.workloadId);
      else if (s.kind === 'dispatch') this.dispatcher.wake(s.backend);
    });
    this.signals.onResync(() => {
      waiters.wakeAll();
      this.life.logWaiters.wakeAll();
      this.dispatcher.wake();
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
    await this.bootstrapTokens();
    for (const backend of this.backends.values()) {
      await backend.start(this.hostFor(backend));
      await this.reconcile(backend);
    }
    this.dispatcher.start();
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
  async submit(input: ValidWorkloadInput): Promise<InsertResult> {
    this.assertBackendsEnabled([input]);
    return this.submitBatcher.add(input);
  }

  /** Submits many in one transaction. */
  async submitBatch(inputs: ValidWorkloadInput[]): Promise<InsertResult[]> {
    this.assertBackendsEnabled(inputs);
    return this.insertBatch(inputs);
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

  private async insertBatch(inputs: ValidWorkloadInput[]): Promise<InsertResult[]> {
    const results = await this.db.tx((q) =>
      insertWorkloads(q, inputs, { maxInfraRetries: this.config.maxInfraRetries }),
    );
    // One wake-up per backend and queue, however many arrived: workers parked on the queue, or the
    // dispatcher loop of a push backend.
    const perQueue = new Map<string, { queue: string; backend: BackendName; count: number }>();
    for (const r of results) {
      if (!r.created) continue;
      const { queue, backend } = r.workload;
      this.metrics.submitted.inc({ queue, backend });
      const group = perQueue.get(`${backend}/${queue}`) ?? { queue, backend, count: 0 };
      group.count++;
      perQueue.set(`${backend}/${queue}`, group);
    }
    if (perQueue.size > 0) this.feed.poke();
    for (const group of perQueue.values()) this.signals.emit({ kind: 'queue', ...group });
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

  /**
   * Cancels: a queued workload at once; a live one through its backend (its worker, its job), which then
   * reports it `cancelled`. An attempt still being submitted is stopped by the dispatcher once it exists.
   */
  async cancel(idOrKey: string): Promise<Workload> {
    const current = await this.getWorkload(idOrKey);
    if (isTerminal(current.state)) return current;
    const updated = await requestCancel(this.db, current.id);
    if (!updated) return this.getWorkload(current.id);
    if (updated.state === 'cancelled') {
      this.metrics.finished.inc({ queue: updated.queue, state: 'cancelled', reason: 'cancelled' });
      this.feed.poke();
    } else {
      await this.backend(updated.backend).cancel({
        workloadId: updated.id,
        attempt: updated.attempt,
        ref: updated.backendRef,
      });
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
      await this.life.logWaiters.park([workload.id], Math.min(left, 5_000)).promise;
    }
  }

  readFeed(after: number, limit: number, waitMs: number): Promise<FeedEvent[]> {
    return this.feed.read(after, limit, waitMs);
  }

  queues(): Promise<QueueStats[]> {
    return queueStats(this.db);
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

  /**
   * One pass: silent workers become lost, passed pending deadlines fail as `unschedulable`, push-backend
   * tasks past their run deadline are stopped and failed, old feed entries go.
   */
  async reap(): Promise<void> {
    await this.pool.reapSilentWorkers();
    for (const w of await pastPendingDeadline(this.db, 500)) {
      const result = await this.db.tx((q) =>
        this.life.failAttempt(
          q,
          w,
          'unschedulable',
          false,
          `not started within pendingSeconds=${w.timeouts.pendingSeconds}`,
        ),
      );
      if (!result) continue;
      this.life.afterChange(result);
      // The attempt may exist in a push backend (a Nomad job waiting for placement): stop it.
      if (w.backend !== 'pool' && w.state !== 'queued') await this.stopAttempt(w);
    }
    for (const w of await pastRunDeadline(this.db, 500)) {
      const result = await finishAttempt(this.db, w.id, w.attempt, null, {
        state: 'failed',
        reason: 'task_error',
        message: `exceeded runSeconds=${w.timeouts.runSeconds}`,
      });
      if (!result) continue;
      this.life.afterChange(result);
      await this.stopAttempt(w);
    }
    this.feed.poke();
    if (Date.now() - this.lastPrune > 60_000) {
      this.lastPrune = Date.now();
      await pruneEvents(this.db, this.config.eventRetentionSeconds);
    }
  }

  /** Stops an attempt the service already settled; whatever the backend reports about it later is fenced off. */
  private async stopAttempt(w: Workload): Promise<void> {
    await this.backend(w.backend)
      .cancel({ workloadId: w.id, attempt: w.attempt, ref: w.backendRef })
      .catch((error: Error) =>
        this.logger.warn({ workload: w.id, attempt: w.attempt, err: error.message }, 'could not stop the attempt'),
      );
  }

  // ---------------------------------------------------------------- backends

  private backend(name: BackendName): Backend {
    const backend = this.backends.get(name);
    if (!backend) {
      throw new ConfigError(
        `backend '${name}' is not enabled in this service; enabled: ${[...this.backends.keys()].join(', ')}`,
      );
    }
    return backend;
  }

  /** What a backend may do to the service: report what its watcher saw, and store logs. */
  private hostFor(backend: Backend): BackendHost {
    return {
      logger: this.logger.child({ backend: backend.name }),
      update: (update) => this.applyBackendUpdate(backend, update),
      appendLog: async (workloadId, attempt, stream, offset, data) => {
        await appendLogChunk(this.db, { workloadId, attempt, stream, offset, data });
        this.signals.emit({ kind: 'log', workloadId });
      },
      logLength: (workloadId, attempt, stream) => storedLength(this.db, workloadId, attempt, stream),
    };
  }

  /** A push backend's watcher saw a change. Updates about other attempts, or finished ones, are dropped. */
  private async applyBackendUpdate(backend: Backend, update: BackendUpdate): Promise<void> {
    const current = await getWorkload(this.db, update.workloadId);
    if (!current || current.attempt !== update.attempt || isTerminal(current.state) || current.state === update.state) {
      this.logger.debug({ update, state: current?.state, attempt: current?.attempt }, 'dropped a stale backend update');
      return;
    }
    const ref = { workloadId: current.id, attempt: current.attempt, ref: current.backendRef };
    // Logs first: when the feed says "finished", the whole log is already readable.
    if (update.state !== 'running') await backend.fetchLogs(ref);
    const result = await this.life.apply(current, update, null);
    if (result && result.state !== 'running') this.dispatcher.wake(backend.name); // capacity came back
  }

  /** Start-up: settles every attempt the database has in flight on `backend` with what the backend found. */
  private async reconcile(backend: Backend): Promise<void> {
    const inFlight = await inFlightOf(this.db, backend.name);
    const verdicts = await backend.reconcile(inFlight);
    const counts = { attached: 0, absent: 0, lost: 0 };
    for (const v of verdicts) {
      counts[v.verdict]++;
      if (v.verdict === 'attached') {
        if (v.ref !== null) await markSubmitted(this.db, v.workloadId, v.attempt, v.ref);
      } else if (v.verdict === 'absent') {
        await releaseClaim(this.db, v.workloadId, v.attempt);
      } else {
        const w = await getWorkload(this.db, v.workloadId);
        if (!w || w.attempt !== v.attempt || isTerminal(w.state)) continue;
        const result = await this.db.tx((q) => this.life.failAttempt(q, w, 'lost', v.started, v.message));
        if (result) this.life.afterChange(result);
      }
    }
    if (verdicts.length > 0) this.logger.info({ backend: backend.name, ...counts }, 'reconciled in-flight attempts');
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reaperTimer) clearTimeout(this.reaperTimer);
    await this.dispatcher.close();
    for (const backend of this.backends.values()) await backend.close();
    this.life.queueWaiters.wakeAll();
    this.life.logWaiters.wakeAll();
    await this.db.close();
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

function uuidFromCompact(compact: string): string | null {
  if (!/^[0-9a-f]{32}$/.test(compact)) return null;
  return `${compact.slice(0, 8)}-${compact.slice(8, 12)}-${compact.slice(12, 16)}-${compact.slice(16, 20)}-${compact.slice(20)}`;
}
