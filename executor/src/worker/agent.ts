import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { PollResult, Report, WorkerView } from '../backends/pool/pool-backend.ts';
import { ApiClient, ApiError, UnreachableError } from '../client/api-client.ts';
import { freeSlots } from '../domain/slots.ts';
import type { Workload } from '../domain/workload.ts';
import type { Worker } from '../store/workers.ts';
import { LogShipper } from './log-shipper.ts';
import { type RunningTask, StartError, type TaskExit, type TaskRuntime } from './runtime.ts';
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
  /** SIGINT: how long running tasks may take to finish before they are stopped. @default 300000 */
  drainTimeoutMs?: number;
  /** Between SIGTERM and SIGKILL when stopping a task. @default 10000 */
  killGraceMs?: number;
  /** Longest long-poll for leases. @default 20000 */
  pollWaitMs?: number;
  /** How often buffered output is uploaded. @default 300 */
  logIntervalMs?: number;
  /** Where the free-disk figure of the heartbeat is read. @default '/' */
  diskPath?: string;
}

interface TaskEntry {
  lease: Workload;
  shipper: LogShipper;
  task: RunningTask | null;
  /** Set when the task must end with this outcome whatever its exit code (cancel, shutdown, timeout). */
  override: Pick<Report, 'state' | 'reason' | 'message'> | null;
  /** Reports for this attempt go out one after another, in order. */
  reports: Promise<void>;
}

/**
 * The pull-worker agent (`airfleet worker`): registers, heartbeats with system metrics, long-polls for
 * leases that fit its free slots, runs them with its runtime, ships their logs and reports their ends.
 * Short API outages are ridden out: running tasks go on, reports and logs are retried with backoff, and
 * whatever finished meanwhile is reported when the service answers again.
 */
export class WorkerAgent {
  private readonly options: Required<Omit<AgentOptions, 'labels'>> & { labels: Record<string, string> };
  private readonly logger: Logger;
  private readonly metrics: SystemMetrics;
  private client: ApiClient;
  private workerId: string | null = null;
  private heartbeatIntervalMs = 10_000;
  private config: WorkerView;
  private readonly tasks = new Map<string, TaskEntry>();
  private pollAbort: AbortController | null = null;
  private draining = false;
  private stopping = false;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private loop: Promise<void> | null = null;
  private readonly idleWaiters = new Set<() => void>();

  constructor(options: AgentOptions) {
    this.options = {
      drainTimeoutMs: 300_000,
      killGraceMs: 10_000,
      pollWaitMs: 20_000,
      logIntervalMs: 300,
      diskPath: '/',
      labels: {},
      ...options,
    };
    this.logger = options.logger;
    this.metrics = new SystemMetrics(this.options.diskPath);
    this.client = new ApiClient(options.apiUrl, options.enrollToken);
    this.config = {
      queues: options.queues,
      concurrency: options.concurrency,
      maintenance: false,
      maintenanceComment: null,
      state: 'idle',
    };
  }

  get running(): number {
    return this.tasks.size;
  }

  /** Registers (retrying while the service is unreachable) and starts the heartbeat and poll loops. */
  async start(): Promise<Worker> {
    const worker = await this.register();
    void this.heartbeat();
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.heartbeatIntervalMs);
    this.loop = this.pollLoop();
    return worker;
  }

  private async register(): Promise<Worker> {
    const enroll = new ApiClient(this.options.apiUrl, this.options.enrollToken);
    const result = await enroll.request<{ worker: Worker; token: string; heartbeatIntervalMs: number }>(
      'POST',
      '/v1/worker/register',
      {
        body: {
          name: this.options.name,
          queues: this.options.queues,
          concurrency: this.options.concurrency,
          labels: this.options.labels,
          runtime: this.options.runtime.name,
          version: this.options.version,
        },
        retry: {
          retryForMs: 120_000,
          onRetry: (e) => this.logger.warn({ err: e.message }, 'registration failed; retrying'),
        },
      },
    );
    this.workerId = result.worker.id;
    this.client = new ApiClient(this.options.apiUrl, result.token);
    this.heartbeatIntervalMs = result.heartbeatIntervalMs;
    this.config = {
      queues: result.worker.queues,
      concurrency: result.worker.concurrency,
      maintenance: result.worker.maintenance,
      maintenanceComment: result.worker.maintenanceComment,
      state: result.worker.state,
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
  }

  private freeSlots(): number {
    return freeSlots(
      this.config.concurrency,
      [...this.tasks.values()].map((t) => t.lease.poolSlots),
    );
  }

  private async pollLoop(): Promise<void> {
    let backoff = 500;
    while (!this.stopping && !this.draining) {
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
    for (const entry of this.tasks.values()) {
      entry.override = { state: 'failed', reason: 'lost', message: 'worker was written off by the service' };
      entry.task?.stop('SIGTERM', this.options.killGraceMs);
    }
    await this.waitIdle(this.options.killGraceMs + 5_000);
    await this.register();
    return true;
  }

  private apply(result: PollResult): void {
    const before = this.config;
    this.config = result.config;
    if (before.maintenance !== result.config.maintenance) {
      this.logger.info(
        { maintenance: result.config.maintenance, comment: result.config.maintenanceComment },
        'maintenance changed',
      );
    }
    for (const c of result.cancel) {
      const entry = this.tasks.get(c.workloadId);
      if (!entry || entry.lease.attempt !== c.attempt || entry.override) continue;
      this.logger.info({ workload: c.workloadId }, 'cancelling at the service request');
      entry.override = { state: 'cancelled', reason: 'cancelled', message: 'cancelled by request' };
      entry.task?.stop('SIGTERM', this.options.killGraceMs);
    }
    for (const lease of result.leases) this.run(lease);
  }

  private run(lease: Workload): void {
    const shipper = new LogShipper({
      client: this.client,
      workloadId: lease.id,
      attempt: lease.attempt,
      intervalMs: this.options.logIntervalMs,
      onError: (e) => this.logger.warn({ err: e.message, workload: lease.id }, 'log upload failed; will retry'),
    });
    const entry: TaskEntry = { lease, shipper, task: null, override: null, reports: Promise.resolve() };
    this.tasks.set(lease.id, entry);
    this.logger.info(
      { workload: lease.id, key: lease.key, attempt: lease.attempt, slots: lease.poolSlots },
      'task leased',
    );
    void this.execute(entry);
  }

  private async execute(entry: TaskEntry): Promise<void> {
    const { lease } = entry;
    let exit: TaskExit | null = null;
    let startError: StartError | null = null;
    try {
      entry.task = await this.options.runtime.start(lease, (stream, data) => entry.shipper.write(stream, data));
      this.report(entry, { workloadId: lease.id, attempt: lease.attempt, state: 'running' });
      let timer: NodeJS.Timeout | null = null;
      if (lease.timeouts.runSeconds) {
        const seconds = lease.timeouts.runSeconds;
        timer = setTimeout(() => {
          entry.override ??= { state: 'failed', reason: 'task_error', message: `exceeded runSeconds=${seconds}` };
          entry.task?.stop('SIGTERM', this.options.killGraceMs);
        }, seconds * 1000);
      }
      if (entry.override) entry.task.stop('SIGTERM', this.options.killGraceMs); // cancelled while starting
      exit = await entry.task.exited;
      if (timer) clearTimeout(timer);
    } catch (error) {
      startError =
        error instanceof StartError
          ? error
          : new StartError('driver', `the runtime failed: ${(error as Error).message}`);
      entry.shipper.write('stderr', Buffer.from(`airfleet: ${startError.message}\n`));
    }
    await entry.shipper.close();
    const final = this.finalReport(entry, exit, startError);
    this.logger.info(
      { workload: lease.id, state: final.state, reason: final.reason, exitCode: final.exitCode },
      'task finished',
    );
    this.report(entry, final);
    await entry.reports;
    this.tasks.delete(lease.id);
    if (this.tasks.size === 0) for (const fn of this.idleWaiters) fn();
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
    if (exit?.reason)
      return {
        ...base,
        state: 'failed',
        reason: exit.reason,
        exitCode,
        message: exit.message ?? undefined,
        started: true,
      };
    if (exitCode === 0) return { ...base, state: 'succeeded', exitCode: 0 };
    return {
      ...base,
      state: 'failed',
      reason: 'task_error',
      exitCode,
      message: exit?.signal ? `killed by ${exit.signal}` : `exited with code ${exitCode}`,
      started: true,
    };
  }

  /** Queues a report for delivery after the ones before it; retried until acknowledged or fenced off. */
  private report(entry: TaskEntry, report: Report): void {
    entry.reports = entry.reports.then(async () => {
      try {
        await this.client.request('POST', '/v1/worker/report', {
          body: report,
          retry: {
            retryForMs: 24 * 3600_000,
            maxDelayMs: 5_000,
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
          if (report.state === 'running') {
            entry.override = { state: 'failed', reason: 'lost', message: 'fenced off' };
            entry.task?.stop('SIGTERM', this.options.killGraceMs);
          }
          return;
        }
        this.logger.error({ err: (error as Error).message, workload: report.workloadId }, 'giving up on a report');
      }
    });
  }

  private async heartbeat(): Promise<void> {
    if (!this.workerId) return;
    try {
      const result = await this.client.request<PollResult>('POST', '/v1/worker/heartbeat', {
        body: {
          metrics: await this.metrics.read(),
          running: [...this.tasks.values()].map((t) => ({ workloadId: t.lease.id, attempt: t.lease.attempt })),
          draining: this.draining,
        },
        timeoutMs: 10_000,
      });
      this.apply({ ...result, leases: [] });
    } catch (error) {
      if (error instanceof UnreachableError || (error instanceof ApiError && error.status >= 500)) {
        this.logger.warn({ err: (error as Error).message }, 'heartbeat failed; tasks keep running');
      } else if (!(error instanceof ApiError && error.status === 409)) {
        this.logger.warn({ err: (error as Error).message }, 'heartbeat refused');
      }
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

  /** SIGINT: take no new work, let running tasks finish (bounded), then stop what is left and leave. */
  async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.logger.info({ running: this.tasks.size, timeoutMs: this.options.drainTimeoutMs }, 'draining: no new tasks');
    this.pollAbort?.abort();
    await this.heartbeat();
    const finished = await this.waitIdle(this.options.drainTimeoutMs);
    if (!finished) {
      this.logger.warn({ running: this.tasks.size }, 'drain timeout: stopping the remaining tasks');
      await this.stopAll({ state: 'failed', reason: 'preempted', message: 'worker drain timed out' });
    }
    await this.leave();
  }

  /** SIGTERM: stop running tasks now (SIGTERM, then SIGKILL after the grace), report them and leave. */
  async shutdown(): Promise<void> {
    this.draining = true;
    this.pollAbort?.abort();
    await this.stopAll({ state: 'failed', reason: 'preempted', message: 'worker was shut down' });
    await this.leave();
  }

  private async stopAll(outcome: NonNullable<TaskEntry['override']>): Promise<void> {
    for (const entry of this.tasks.values()) {
      entry.override ??= outcome;
      entry.task?.stop('SIGTERM', this.options.killGraceMs);
    }
    await this.waitIdle(this.options.killGraceMs + 30_000);
  }

  private async leave(): Promise<void> {
    this.stopping = true;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.pollAbort?.abort();
    await this.loop;
    await this.client.request('POST', '/v1/worker/deregister', { timeoutMs: 5_000 }).catch((error: Error) => {
      this.logger.warn({ err: error.message }, 'could not deregister; the service will mark this worker lost');
    });
    this.logger.info('worker stopped');
  }
}
