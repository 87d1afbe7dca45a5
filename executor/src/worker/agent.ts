import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { PollResult, Report } from '../backends/pool/lease-protocol.ts';
import type { HeartbeatResult, LeasedWorkload, StopOrder, WorkerView } from '../backends/pool/worker-registry.ts';
import { ApiClient, ApiError, type ClientTls, UnreachableError } from '../client/api-client.ts';
import { outcomeOfExit } from '../domain/outcome.ts';
import { FAILURE_REASONS, type FailureReason } from '../domain/states.ts';
import type { LogStream } from '../store/logs.ts';
import type { Worker } from '../store/workers.ts';
import { type Leftover, LogSpool, leftoverSpools, ResumeFrom } from './log-spool.ts';
import { type RunningTask, StartError, type TaskExit, type TaskRuntime } from './runtime.ts';
import type { BusyHook } from './scale-in-protection.ts';
import { StateDir } from './state-dir.ts';
import { SystemMetrics } from './system-metrics.ts';

export interface AgentOptions {
  apiUrl: string;
  /** Token with the `enroll` (or `admin`) scope; traded at registration for the worker's own token. */
  enrollToken: string;
  name: string;
  queues: string[];
  concurrency: number;
  labels?: Record<string, string>;
  runtime: TaskRuntime;
  logger: Logger;
  version: string;
  /**
   * The worker's own directory: its identity (id and token, so a restart can take its name back), the
   * output spool and the final reports of its tasks. Must survive a restart of the worker.
   */
  stateDir: string;
  /** Most output of one stream of one task kept on disk while the service cannot take it. @default 256 MiB */
  spoolMaxBytes?: number;
  /** SIGINT: how long running tasks may take to finish before they are stopped. @default 300000 */
  drainTimeoutMs?: number;
  /** Between SIGTERM and SIGKILL when stopping a task. @default 10000 */
  killGraceMs?: number;
  /** Longest long-poll for leases. @default 20000 */
  pollWaitMs?: number;
  /** How often spooled output is uploaded. @default 300 */
  logIntervalMs?: number;
  /** Where the free-disk figure of the heartbeat is read. @default '/' */
  diskPath?: string;
  /** Told before the first task starts and after the last one ends (Auto Scaling scale-in protection). */
  busyHook?: BusyHook;
  /** A client certificate, for a service that requires one on the worker protocol. */
  tls?: ClientTls;
}

interface TaskEntry {
  lease: LeasedWorkload;
  spool: LogSpool;
  task: RunningTask | null;
  /** Set when the task must end with this outcome whatever its exit code (a stop, a shutdown, a timeout). */
  override: Pick<Report, 'state' | 'reason' | 'message'> | null;
  /** Reports for this attempt go out one after another, in order. */
  reports: Promise<void>;
  uploading: Promise<void> | null;
  uploadTimer: NodeJS.Timeout | null;
  /** The service no longer takes anything about this attempt (it moved on): stop sending. */
  fenced: boolean;
  /** The task's process is over (or never started): only its delivery may still be under way. */
  ended: boolean;
}

/** On the way out, how long deliveries (output, final reports) may take before they are left on disk. */
const DELIVERY_WAIT_MS = 10_000;

/**
 * Tasks are held by attempt, not by workload: the next attempt of a workload can be leased to this worker
 * while the delivery of the previous one is still being acknowledged (the service commits the report before
 * its reply arrives, and a parked poll may answer first). Keyed by workload, the end of the old attempt's
 * delivery removed the new attempt, which then went missing from heartbeats and was failed as lost.
 */
const attemptKey = (workloadId: string, attempt: number) => `${workloadId}#${attempt}`;

/** Margin kept between our tasks being dead and the service writing us off: a tenth of the timeout, 2 s at most. */
const fenceMargin = (timeoutMs: number) => Math.min(2_000, timeoutMs / 10);

/**
 * The pull-worker agent (`airfleet worker`): registers, heartbeats with system metrics, long-polls for
 * leases that fit its free slots, runs them with its runtime, ships their logs and reports their ends.
 *
 * What it guarantees (docs/architecture.md, "Leases and fencing" and "Logs and reports"):
 * - It fences itself: when it could not renew its lease on the service (a heartbeat answered) for the
 *   heartbeat timeout less a margin, it stops its tasks, so the service may requeue a silent worker's work
 *   knowing none of it still runs. Its tasks also die with it when it is killed (the runtime's lifeline).
 * - Nothing it was told is lost: output is spooled to disk before upload and uploads resume from what the
 *   service holds; a task's final report is on disk before it is sent, and is sent again after a restart.
 * - Once draining or stopping, it starts nothing new: a lease that still arrives is handed back unstarted.
 */
export class WorkerAgent {
  private readonly options: Required<Omit<AgentOptions, 'labels' | 'busyHook' | 'tls'>> & {
    tls?: ClientTls | undefined;
    labels: Record<string, string>;
    busyHook?: BusyHook | undefined;
  };
  private readonly logger: Logger;
  private readonly metrics: SystemMetrics;
  private readonly state: StateDir;
  private client: ApiClient;
  private readonly enroll: ApiClient;
  private workerId: string | null = null;
  private heartbeatIntervalMs = 10_000;
  private heartbeatTimeoutMs = 45_000;
  private config: WorkerView;
  private readonly tasks = new Map<string, TaskEntry>();
  private pollAbort: AbortController | null = null;
  private draining = false;
  private stopping = false;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private fenceTimer: NodeJS.Timeout | null = null;
  /** performance.now() when the last heartbeat the service answered was sent. */
  private lastRenewed = performance.now();
  private fenced = false;
  private loop: Promise<void> | null = null;
  private recovering: Promise<void> = Promise.resolve();
  private readonly idleWaiters = new Set<() => void>();
  /** Attempts of a previous process whose results are being delivered: still held, so heartbeats list them. */
  private readonly recovered = new Map<string, number>();
  /** Settles once the worker has left (after a drain or a shutdown, whoever asked for it). */
  readonly stopped: Promise<void>;
  private markStopped: () => void = () => undefined;

  constructor(options: AgentOptions) {
    this.options = {
      drainTimeoutMs: 300_000,
      killGraceMs: 10_000,
      pollWaitMs: 20_000,
      logIntervalMs: 300,
      diskPath: '/',
      labels: {},
      spoolMaxBytes: 256 * 1024 * 1024,
      ...options,
    };
    this.logger = options.logger;
    this.metrics = new SystemMetrics(this.options.diskPath);
    this.state = new StateDir(options.stateDir);
    // One client (and, with TLS, one connection pool) for the enrollment token; the worker's own token
    // reuses it (withToken).
    this.enroll = new ApiClient(options.apiUrl, options.enrollToken, options.tls);
    this.client = this.enroll;
    this.config = {
      queues: options.queues,
      concurrency: options.concurrency,
      maintenance: false,
      maintenanceComment: null,
      state: 'idle',
      draining: false,
    };
    this.stopped = new Promise((resolve) => {
      this.markStopped = resolve;
    });
  }

  get running(): number {
    return this.tasks.size;
  }

  /**
   * Ends what a previous process of this worker left running, registers (retrying while the service is
   * unreachable or the name is still held), and starts the heartbeat and poll loops.
   */
  async start(): Promise<Worker> {
    const orphans = await this.options.runtime.cleanupOrphans();
    if (orphans > 0) this.logger.warn({ orphans }, 'removed tasks a previous process of this worker left running');
    const leftovers = leftoverSpools(this.state.spoolDir);
    const worker = await this.register(leftovers.map((l) => ({ workloadId: l.workloadId, attempt: l.attempt })));
    this.recovering = this.recover(leftovers);
    void this.heartbeat();
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.heartbeatIntervalMs);
    this.fenceTimer = setInterval(() => this.checkFence(), 500);
    this.loop = this.pollLoop();
    return worker;
  }

  private async register(resume: Array<{ workloadId: string; attempt: number }> = []): Promise<Worker> {
    const previous = this.state.readIdentity();
    for (let delay = 1_000; ; delay = Math.min(delay * 2, 10_000)) {
      try {
        const result = await this.enroll.request<{
          worker: Worker;
          token: string;
          heartbeatIntervalMs: number;
          heartbeatTimeoutMs: number;
          leaseAckTimeoutMs?: number;
        }>('POST', '/v1/worker/register', {
          body: {
            name: this.options.name,
            queues: this.options.queues,
            concurrency: this.options.concurrency,
            labels: this.options.labels,
            runtime: this.options.runtime.name,
            version: this.options.version,
            ...(previous ? { previousToken: previous.token } : {}),
            ...(resume.length > 0 ? { resume } : {}),
          },
          retry: {
            retryForMs: Number.POSITIVE_INFINITY,
            maxDelayMs: 10_000,
            onRetry: (e) => this.logger.warn({ err: e.message }, 'registration failed; retrying'),
          },
        });
        this.workerId = result.worker.id;
        this.client = this.enroll.withToken(result.token);
        this.state.writeIdentity({ workerId: result.worker.id, token: result.token });
        this.heartbeatIntervalMs = result.heartbeatIntervalMs;
        this.heartbeatTimeoutMs = result.heartbeatTimeoutMs;
        this.lastRenewed = performance.now();
        this.fenced = false;
        this.config = {
          queues: result.worker.queues,
          concurrency: result.worker.concurrency,
          maintenance: result.worker.maintenance,
          maintenanceComment: result.worker.maintenanceComment,
          state: result.worker.state,
          draining: result.worker.draining,
        };
        this.logger.info(
          {
            worker: result.worker.name,
            queues: this.config.queues,
            concurrency: this.config.concurrency,
            runtime: this.options.runtime.name,
          },
          'worker registered',
        );
        return result.worker;
      } catch (error) {
        if (error instanceof ApiError && error.status === 409) {
          // The name is still held by a process the service believes alive (this one's predecessor killed a
          // moment ago, without its state directory; or another worker by mistake): wait for it to lapse.
          this.logger.warn({ err: error.message, retryInMs: delay }, 'the worker name is taken; waiting');
          await sleep(delay);
          continue;
        }
        throw error;
      }
    }
  }

  /**
   * Finishes what a previous process of this worker could not: uploads the rest of each task's output, then
   * its final report — the recorded one, or, for a task that was still running when that process died (and
   * died with it), a report saying so.
   */
  private async recover(leftovers: Leftover[]): Promise<void> {
    for (const l of leftovers) this.recovered.set(l.workloadId, l.attempt);
    for (const l of leftovers) {
      const spool = LogSpool.recover(l.dir, this.options.spoolMaxBytes);
      const entry = this.entryFor({ id: l.workloadId, attempt: l.attempt } as LeasedWorkload, spool);
      const final: Report = isReport(l.final)
        ? l.final
        : l.started
          ? {
              workloadId: l.workloadId,
              attempt: l.attempt,
              state: 'failed',
              reason: 'lost',
              started: true,
              message: 'the worker process died while the task ran; the task was stopped with it',
            }
          : {
              workloadId: l.workloadId,
              attempt: l.attempt,
              state: 'released',
              message: 'handed back unstarted: the worker process stopped before it started the task',
            };
      await this.finishDelivery(entry, final);
      this.recovered.delete(l.workloadId);
    }
    if (leftovers.length > 0)
      this.logger.info({ attempts: leftovers.length }, "delivered a previous process's results");
  }

  private freeSlots(): number {
    let used = 0;
    for (const t of this.tasks.values()) used += t.lease.poolSlots;
    return Math.max(0, this.config.concurrency - used);
  }

  private accepting(): boolean {
    return !this.stopping && !this.draining && !this.fenced;
  }

  private async pollLoop(): Promise<void> {
    this.polling = true;
    try {
      await this.pollWhileAccepting();
    } finally {
      this.polling = false;
    }
  }

  private async pollWhileAccepting(): Promise<void> {
    let backoff = 500;
    while (this.accepting()) {
      // The service does the slot accounting; freeSlots is what this worker believes, for the record.
      const free = this.config.maintenance ? 0 : this.freeSlots();
      const abort = new AbortController();
      this.pollAbort = abort;
      try {
        const result = await this.client.request<PollResult>('POST', '/v1/worker/poll', {
          body: {
            freeSlots: free,
            waitMs: this.options.pollWaitMs,
            known: {
              queues: this.config.queues,
              concurrency: this.config.concurrency,
              maintenance: this.config.maintenance,
            },
          },
          timeoutMs: this.options.pollWaitMs + 15_000,
          signal: abort.signal,
        });
        backoff = 500;
        this.apply(result);
      } catch (error) {
        if (abort.signal.aborted) continue; // we are stopping
        if (await this.handleLoss(error)) continue;
        const hinted =
          error instanceof ApiError ? (error.details as { retryAfterMs?: number })?.retryAfterMs : undefined;
        this.logger.warn(
          { err: (error as Error).message, retryInMs: hinted ?? backoff },
          'poll failed; tasks keep running',
        );
        await sleep(hinted ?? backoff);
        backoff = Math.min(backoff * 2, 5_000);
      } finally {
        this.pollAbort = null;
      }
    }
  }

  /** The service wrote this worker off (lost or offline): its attempts are void, so stop them and re-register. */
  private async handleLoss(error: unknown): Promise<boolean> {
    if (!(error instanceof ApiError && (error.status === 409 || error.status === 401))) return false;
    if (this.stopping) return true;
    this.logger.error(
      { err: error.message },
      'the service no longer knows this worker; stopping its tasks and registering again',
    );
    this.stopEverything({ state: 'failed', reason: 'lost', message: 'worker was written off by the service' });
    await this.waitIdle(this.options.killGraceMs + 5_000);
    await this.register();
    return true;
  }

  private apply(result: PollResult): void {
    this.applyConfig(result.config);
    this.applyStops(result.stop);
    for (const lease of result.leases) {
      if (this.accepting()) this.run(lease);
      else this.handBack(lease, 'the worker is stopping');
    }
  }

  private applyConfig(config: WorkerView): void {
    const before = this.config;
    this.config = config;
    if (before.maintenance !== config.maintenance) {
      this.logger.info({ maintenance: config.maintenance, comment: config.maintenanceComment }, 'maintenance changed');
    }
    // An operator asked this worker to drain and leave (the dashboard, or POST /v1/workers/:name/drain): the
    // same as a SIGINT here. Its own drain shows in the config too, which changes nothing.
    if (config.draining && !this.draining && !this.stopping) {
      this.logger.info('the service asks this worker to drain and leave');
      void this.drain();
    }
  }

  private applyStops(stops: StopOrder[]): void {
    for (const s of stops) {
      const entry = this.tasks.get(attemptKey(s.workloadId, s.attempt));
      if (!entry || entry.override) continue;
      this.logger.info({ workload: s.workloadId, reason: s.reason }, 'stopping a task at the service request');
      const reason = (FAILURE_REASONS as readonly string[]).includes(s.reason)
        ? (s.reason as FailureReason)
        : 'cancelled';
      entry.override =
        reason === 'cancelled'
          ? { state: 'cancelled', reason: 'cancelled', message: s.message ?? 'cancelled by request' }
          : { state: 'failed', reason, message: s.message ?? `stopped by the service (${reason})` };
      entry.task?.stop('SIGTERM', this.options.killGraceMs);
    }
  }

  /** Returns a lease unstarted: the service makes it a new attempt without spending a retry. */
  private handBack(lease: LeasedWorkload, why: string): void {
    this.logger.info({ workload: lease.id, attempt: lease.attempt, why }, 'handing a lease back unstarted');
    void this.client
      .request('POST', '/v1/worker/report', {
        body: {
          workloadId: lease.id,
          attempt: lease.attempt,
          state: 'released',
          message: `handed back unstarted: ${why}`,
        },
        retry: { retryForMs: 30_000, maxDelayMs: 2_000 },
      })
      .catch((error: Error) =>
        this.logger.warn(
          { workload: lease.id, err: error.message },
          'could not hand a lease back; the service will time it out',
        ),
      );
  }

  private entryFor(lease: LeasedWorkload, spool: LogSpool): TaskEntry {
    return {
      lease,
      spool,
      task: null,
      override: null,
      reports: Promise.resolve(),
      uploading: null,
      uploadTimer: null,
      fenced: false,
      ended: false,
    };
  }

  private run(lease: LeasedWorkload): void {
    const spool = LogSpool.create(
      join(this.state.spoolDir, `${lease.id}.${lease.attempt}`),
      this.options.spoolMaxBytes,
    );
    const entry = this.entryFor(lease, spool);
    this.tasks.set(attemptKey(lease.id, lease.attempt), entry);
    this.logger.info(
      { workload: lease.id, key: lease.key, attempt: lease.attempt, slots: lease.poolSlots },
      'task leased',
    );
    void this.execute(entry);
  }

  private output(entry: TaskEntry, stream: LogStream, data: Buffer): void {
    entry.spool.write(stream, data);
    entry.uploadTimer ??= setTimeout(() => {
      entry.uploadTimer = null;
      void this.upload(entry).catch(() => undefined);
    }, this.options.logIntervalMs);
  }

  /** One upload pass of an attempt's spool; passes never overlap, so offsets stay in order. */
  private upload(entry: TaskEntry): Promise<void> {
    entry.uploading ??= entry.spool
      .upload((stream, offset, data) => this.sendChunk(entry, stream, offset, data))
      .finally(() => {
        entry.uploading = null;
      });
    return entry.uploading;
  }

  private async sendChunk(entry: TaskEntry, stream: LogStream, offset: number, data: Buffer): Promise<number> {
    if (entry.fenced) return Number.MAX_SAFE_INTEGER; // nothing more is taken: treat all as sent
    try {
      const answer = await this.client.request<{ length: number }>('POST', '/v1/worker/logs', {
        body: {
          workloadId: entry.lease.id,
          attempt: entry.lease.attempt,
          stream,
          offset,
          data: data.toString('base64'),
        },
        timeoutMs: 30_000,
      });
      return answer.length;
    } catch (error) {
      if (error instanceof ApiError && error.code === 'log_offset') {
        throw new ResumeFrom((error.details as { storedLength: number }).storedLength);
      }
      if (error instanceof ApiError && (error.status === 409 || error.status === 404)) {
        entry.fenced = true;
        return Number.MAX_SAFE_INTEGER;
      }
      if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429) {
        // Refused for good (a bug, not an outage): retrying would refuse again forever.
        this.logger.error({ workload: entry.lease.id, err: error.message }, 'the service refused a log chunk');
        return Number.MAX_SAFE_INTEGER;
      }
      throw error;
    }
  }

  private afterTaskGone(): void {
    if (this.tasks.size > 0) return;
    this.options.busyHook?.idle();
    for (const fn of this.idleWaiters) fn();
  }

  private async execute(entry: TaskEntry): Promise<void> {
    const { lease } = entry;
    let exit: TaskExit | null = null;
    let startError: StartError | null = null;
    try {
      // Everything that can fail before the task's own code runs (image pull, configuration) happens before
      // the start is confirmed: such failures are the service's to retry.
      await this.options.runtime.prepare?.(lease);
      // Busy before the task can start: an instance that scale-in could take must be protected first.
      await this.options.busyHook?.busy();
      // The service records the start before the task starts: while an attempt is `pending`, its task has
      // not run, which is what lets the service give a lost worker's leases to another one safely.
      if (!(await this.confirmStart(entry))) {
        await this.abandon(entry);
        return;
      }
      this.state.markStarted(entry.spool.dir);
      entry.task = await this.options.runtime.start(lease, (stream, data) => this.output(entry, stream, data));
      // Logged once the runtime has started it: with the shutdown line below, a reader (and the shutdown suite)
      // can tell from the worker's own clock that nothing started after the worker took the signal.
      this.logger.info({ workload: lease.id, attempt: lease.attempt }, 'task started');
      let timer: NodeJS.Timeout | null = null;
      if (lease.timeouts.runSeconds) {
        const seconds = lease.timeouts.runSeconds;
        timer = setTimeout(() => {
          entry.override ??= { state: 'failed', reason: 'task_error', message: `exceeded runSeconds=${seconds}` };
          entry.task?.stop('SIGTERM', this.options.killGraceMs);
        }, seconds * 1000);
      }
      if (entry.override) entry.task.stop('SIGTERM', this.options.killGraceMs); // stopped while starting
      exit = await entry.task.exited;
      if (timer) clearTimeout(timer);
    } catch (error) {
      startError =
        error instanceof StartError
          ? error
          : new StartError('driver', `the runtime failed: ${(error as Error).message}`);
      entry.spool.write('stderr', Buffer.from(`airfleet: ${startError.message}\n`));
    }
    entry.ended = true;
    const final = this.finalReport(entry, exit, startError);
    this.logger.info(
      { workload: lease.id, state: final.state, reason: final.reason, exitCode: final.exitCode },
      'task finished',
    );
    await this.finishDelivery(entry, final);
    this.tasks.delete(attemptKey(lease.id, lease.attempt));
    this.afterTaskGone();
  }

  /**
   * Reports the attempt running and waits for the service to record it, retrying through outages, but not
   * past the point where this worker fences itself. False: do not start it (stopped meanwhile, no longer
   * ours, or the service could not be reached in time).
   */
  private async confirmStart(entry: TaskEntry): Promise<boolean> {
    const report: Report = { workloadId: entry.lease.id, attempt: entry.lease.attempt, state: 'running' };
    for (let delay = 200; ; delay = Math.min(delay * 2, 2_000)) {
      if (entry.override || this.fenced || this.stopping) return false;
      try {
        await this.client.request('POST', '/v1/worker/report', { body: report, timeoutMs: 10_000 });
        return !entry.override;
      } catch (error) {
        if (error instanceof ApiError && error.status < 500 && error.status !== 429) {
          this.logger.warn({ workload: entry.lease.id, err: error.message }, 'the service did not let the task start');
          entry.fenced = error.status === 409 || error.status === 404;
          return false;
        }
        this.logger.warn({ workload: entry.lease.id, err: (error as Error).message }, 'cannot confirm the start yet');
        await sleep(delay);
      }
    }
  }

  /**
   * A lease that will not start: handed back if the service still counts it as ours (a stop for it is on its
   * way, or this worker is stopping), so that it becomes a new attempt now; dropped otherwise.
   */
  private async abandon(entry: TaskEntry): Promise<void> {
    const { lease } = entry;
    entry.ended = true;
    if (!entry.fenced) {
      const report: Report = entry.override
        ? { workloadId: lease.id, attempt: lease.attempt, ...entry.override, started: false }
        : { workloadId: lease.id, attempt: lease.attempt, state: 'released', message: 'handed back unstarted' };
      this.report(entry, report);
      await entry.reports;
    }
    entry.spool.remove();
    this.tasks.delete(attemptKey(lease.id, lease.attempt));
    this.afterTaskGone();
  }

  /**
   * The end of an attempt, delivered so that nothing is lost: the report is written to disk first (a restart
   * sends it), then all output is uploaded (the log is whole when the service records the end), then the
   * report goes out, retried for as long as it takes; only then is the spool removed.
   */
  private async finishDelivery(entry: TaskEntry, final: Report): Promise<void> {
    this.state.writeFinal(entry.spool.dir, final);
    entry.spool.seal();
    if (entry.uploadTimer) clearTimeout(entry.uploadTimer);
    for (let delay = 500; !entry.fenced; delay = Math.min(delay * 2, 10_000)) {
      try {
        await this.upload(entry);
        if (entry.spool.drained) break;
      } catch (error) {
        this.logger.warn(
          { workload: entry.lease.id, err: (error as Error).message, unacked: entry.spool.unackedBytes },
          'output not uploaded yet; retrying',
        );
        await sleep(delay);
      }
    }
    this.report(entry, final);
    await entry.reports;
    entry.spool.remove();
  }

  private finalReport(entry: TaskEntry, exit: TaskExit | null, startError: StartError | null): Report {
    const base = { workloadId: entry.lease.id, attempt: entry.lease.attempt };
    if (startError) {
      return {
        ...base,
        state: 'failed',
        reason: startError.reason,
        exitCode: startError.exitCode,
        message: startError.message,
        started: false,
      };
    }
    const exitCode = exit?.exitCode ?? null;
    if (entry.override) return { ...base, ...entry.override, exitCode, started: true };
    if (exit?.reason) {
      return { ...base, state: 'failed', reason: exit.reason, exitCode, message: exit.message, started: true };
    }
    const outcome = outcomeOfExit({ exitCode, signal: exit?.signal ?? null });
    if (outcome.state === 'succeeded') return { ...base, state: 'succeeded', exitCode: 0 };
    return { ...base, ...outcome };
  }

  /**
   * Queues a report for delivery after the ones before it; retried until acknowledged or refused for good
   * (the attempt is no longer this worker's), however long the service is away.
   */
  private report(entry: TaskEntry, report: Report): void {
    entry.reports = entry.reports.then(async () => {
      if (entry.fenced && report.state !== 'running') {
        // The service moved on from this attempt: nothing will take the report.
        return;
      }
      try {
        await this.client.request('POST', '/v1/worker/report', {
          body: report,
          retry: {
            retryForMs: Number.POSITIVE_INFINITY,
            maxDelayMs: 10_000,
            onRetry: (e, ms) =>
              this.logger.warn({ err: e.message, retryInMs: Math.round(ms) }, 'report not delivered yet; retrying'),
          },
        });
      } catch (error) {
        if (error instanceof ApiError && (error.status === 409 || error.status === 404)) {
          this.logger.warn(
            { workload: report.workloadId, err: error.message },
            'report refused: attempt no longer ours',
          );
          entry.fenced = true;
          if (report.state === 'running') {
            entry.override = { state: 'failed', reason: 'lost', message: 'fenced off' };
            entry.task?.stop('SIGTERM', this.options.killGraceMs);
          }
          return;
        }
        this.logger.error({ err: (error as Error).message, workload: report.workloadId }, 'report refused');
      }
    });
  }

  private async heartbeat(): Promise<void> {
    if (!this.workerId) return;
    const sent = performance.now();
    try {
      const result = await this.client.request<HeartbeatResult>('POST', '/v1/worker/heartbeat', {
        body: {
          metrics: await this.metrics.read(),
          running: [
            ...[...this.tasks.values()].map((t) => ({ workloadId: t.lease.id, attempt: t.lease.attempt })),
            ...[...this.recovered].map(([workloadId, attempt]) => ({ workloadId, attempt })),
          ],
          draining: this.draining || this.stopping,
        },
        timeoutMs: Math.min(10_000, this.heartbeatTimeoutMs / 4),
      });
      this.lastRenewed = Math.max(this.lastRenewed, sent);
      this.applyConfig(result.config);
      this.applyStops(result.stop);
      // Fenced, but the service still knew us when it came back: once the stopped tasks are reported, work on.
      if (this.fenced && this.tasks.size === 0) {
        this.fenced = false;
        this.logger.info('the service answers again; taking work again');
        this.ensurePolling();
      }
    } catch (error) {
      if (error instanceof UnreachableError || (error instanceof ApiError && error.status >= 500)) {
        this.logger.warn({ err: (error as Error).message }, 'heartbeat failed; tasks keep running');
      } else if (error instanceof ApiError && (error.status === 409 || error.status === 401)) {
        // Written off while away (a fenced worker is, by design): register again, then take work again.
        if (!this.polling && !this.stopping && !this.draining) void this.rejoin(error);
      } else {
        this.logger.warn({ err: (error as Error).message }, 'heartbeat refused');
      }
    }
  }

  private rejoining = false;

  private async rejoin(error: ApiError): Promise<void> {
    if (this.rejoining) return;
    this.rejoining = true;
    try {
      await this.handleLoss(error);
      this.ensurePolling();
    } finally {
      this.rejoining = false;
    }
  }

  private polling = false;

  /** Starts the poll loop unless it runs (it ends when the worker fences itself). */
  private ensurePolling(): void {
    if (this.polling || !this.accepting()) return;
    this.loop = this.pollLoop();
  }

  /**
   * Self-fencing: the service writes a worker off once it has not heard from it for the heartbeat timeout,
   * and then runs its work elsewhere. So before that moment (less the kill grace and a margin), a worker that
   * could not renew stops its tasks itself.
   */
  private checkFence(): void {
    if (this.fenced || this.tasks.size === 0) return;
    const silent = performance.now() - this.lastRenewed;
    const grace = Math.min(this.options.killGraceMs, Math.max(0, this.heartbeatTimeoutMs / 4));
    if (silent < this.heartbeatTimeoutMs - fenceMargin(this.heartbeatTimeoutMs) - grace) return;
    this.fenced = true;
    this.pollAbort?.abort();
    this.logger.error(
      { silentMs: Math.round(silent), timeoutMs: this.heartbeatTimeoutMs, tasks: this.tasks.size },
      'cannot reach the service: stopping every task before the service gives them to another worker',
    );
    for (const entry of this.tasks.values()) {
      entry.override ??= {
        state: 'failed',
        reason: 'lost',
        message: `the worker could not reach the service for ${Math.round(silent / 1000)} s and stopped its tasks`,
      };
      entry.task?.stop('SIGTERM', grace);
    }
  }

  private waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.tasks.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.idleWaiters.delete(done);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.idleWaiters.delete(done);
        resolve(false);
      }, timeoutMs);
      this.idleWaiters.add(done);
    });
  }

  /** Resolves once every task's process is over (their deliveries may go on), or after `timeoutMs`. */
  private async waitTasksEnded(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while ([...this.tasks.values()].some((t) => !t.ended)) {
      if (Date.now() > deadline) return false;
      await sleep(100);
    }
    return true;
  }

  /**
   * SIGINT: take no new work, let running tasks finish (bounded), then stop what is left and leave. Results
   * the service cannot take yet stay on disk and go out at the next start.
   */
  async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.logger.info({ running: this.tasks.size, timeoutMs: this.options.drainTimeoutMs }, 'draining: no new tasks');
    this.pollAbort?.abort();
    await this.heartbeat();
    if (!(await this.waitTasksEnded(this.options.drainTimeoutMs))) {
      this.logger.warn({ running: this.tasks.size }, 'drain timeout: stopping the remaining tasks');
      this.stopEverything({ state: 'failed', reason: 'preempted', message: 'worker drain timed out' });
      await this.waitTasksEnded(this.options.killGraceMs + 5_000);
    }
    await this.waitIdle(DELIVERY_WAIT_MS);
    await this.leave();
  }

  /** SIGTERM: start nothing more, stop running tasks now (SIGTERM, SIGKILL after the grace), report, leave. */
  async shutdown(): Promise<void> {
    this.stopping = true;
    this.logger.info({ running: this.tasks.size }, 'shutting down: no new tasks, stopping the running ones');
    this.pollAbort?.abort();
    this.stopEverything({ state: 'failed', reason: 'preempted', message: 'worker was shut down' });
    await this.waitTasksEnded(this.options.killGraceMs + 5_000);
    await this.waitIdle(DELIVERY_WAIT_MS);
    await this.leave();
  }

  private stopEverything(outcome: NonNullable<TaskEntry['override']>): void {
    for (const entry of this.tasks.values()) {
      entry.override ??= outcome;
      entry.task?.stop('SIGTERM', this.options.killGraceMs);
    }
  }

  private async leave(): Promise<void> {
    this.stopping = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    if (this.fenceTimer) clearInterval(this.fenceTimer);
    this.pollAbort?.abort();
    await this.loop;
    // A previous process's results still on their way (the service is away): the next start sends them.
    await Promise.race([this.recovering, sleep(5_000)]);
    const unsent = this.tasks.size;
    if (unsent === 0) {
      await this.client.request('POST', '/v1/worker/deregister', { timeoutMs: 5_000 }).catch((error: Error) => {
        this.logger.warn({ err: error.message }, 'could not deregister; the service will mark this worker lost');
      });
    }
    this.logger.info('worker stopped');
    this.markStopped();
  }
}

function isReport(value: unknown): value is Report {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Report).workloadId === 'string' &&
    typeof (value as Report).attempt === 'number' &&
    typeof (value as Report).state === 'string'
  );
}
