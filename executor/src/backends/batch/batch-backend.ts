import type { BatchClient, JobDetail, JobQueueDetail, JobSummary } from '@aws-sdk/client-batch';
import type { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Workload } from '../../domain/workload.ts';
import { ConfigError } from '../../errors.ts';
import {
  type AttemptRef,
  type Backend,
  type BackendHost,
  type BackendUpdate,
  type InFlightAttempt,
  type ReconcileVerdict,
  type SubmitContext,
  SubmitError,
  type SubmitResult,
} from '../backend.ts';
import type { AttemptSecrets } from './attempt-secrets.ts';
import { AwsCaller, isTransient } from './aws-calls.ts';
import type { BatchConfig } from './batch-config.ts';
import { jobName, STOP_REASONS, submitJobInput, TAG_ATTEMPT, TAG_WORKLOAD } from './job-spec.ts';
import { observe } from './job-status.ts';
import type { LogCopier } from './log-copier.ts';
import { type RateLimiter, releaseLimiter, sharedLimiter } from './rate-limiter.ts';

type Sdk = typeof import('./aws-sdk.ts');

/** What the backend needs from outside; unit tests pass clients whose HTTP handler answers from fixtures. */
export interface BatchBackendDeps {
  batch?: BatchClient;
  logs?: CloudWatchLogsClient;
  secrets?: SecretsManagerClient;
}

/** DescribeJobs takes at most 100 job ids. */
const DESCRIBE_BATCH = 100;
const QUEUE_CACHE_MS = 60_000;

interface Watched {
  workloadId: string;
  attempt: number;
  jobId: string;
  logs: LogCopier;
  cancelRequested: boolean;
  stopSent: 'cancel' | 'terminate' | null;
  lastJob: JobDetail | null;
  firstRunnableAt: number | null;
  missingSince: number | null;
  lastLogCopy: number;
  copyingLogs: boolean;
  hasSecret: boolean;
}

/**
 * AWS Batch as a push backend: one Batch job per attempt (docs/batch-backend.md).
 *
 * - submit: the attempt's secrets into a Secrets Manager secret of its own, then SubmitJob with the
 *   command, environment, resources and tags (workload id, attempt), `submitJobKwargs` deep-merged with
 *   the task's `execConfig.batch`, and `retryStrategy.attempts = 1`;
 * - one status loop per instance: DescribeJobs for every live job this instance owns, 100 ids a call;
 *   RUNNING → running, SUCCEEDED/FAILED → the end with reason and exit code; a job RUNNABLE past its
 *   timeout is terminated and fails `unschedulable`;
 * - logs from the job's CloudWatch stream while it runs and after it ended;
 * - cancel: CancelJob before the job starts, TerminateJob after;
 * - reconcile: jobs found by name (ListJobs with a JOB_NAME filter) and checked by tags.
 *
 * Every AWS call goes through one token bucket per account and region ({@link sharedLimiter}), and
 * throttling slows the whole instance down instead of failing the work.
 */
export class BatchBackend implements Backend {
  readonly name = 'batch' as const;
  readonly mode = 'push' as const;
  readonly config: BatchConfig;
  private readonly deps: BatchBackendDeps;
  private host: BackendHost | null = null;
  private sdk!: Sdk;
  private batch!: BatchClient;
  private logs!: CloudWatchLogsClient;
  private secretsClient!: SecretsManagerClient;
  private limiterKeys: string[] = [];
  private limiter!: RateLimiter;
  /** Batch calls (SubmitJob, DescribeJobs...): one bucket. */
  caller!: AwsCaller;
  /** CloudWatch Logs and Secrets Manager have quotas of their own. */
  private logsCaller!: AwsCaller;
  private secretsCaller!: AwsCaller;
  private secrets!: AttemptSecrets;
  private readonly watched = new Map<string, Watched>();
  private readonly queues = new Map<string, { at: number; detail: JobQueueDetail | null }>();
  private submitsInFlight = 0;
  private loopTimer: NodeJS.Timeout | null = null;
  private polling: Promise<void> = Promise.resolve();
  private readonly stop = new AbortController();
  private closed = false;
  /** Status passes made and jobs they described, for the benchmark's DescribeJobs-per-job figure. */
  readonly stats = { polls: 0, describeCalls: 0, jobsDescribed: 0 };

  constructor(config: BatchConfig, deps: BatchBackendDeps = {}) {
    this.config = config;
    this.deps = deps;
  }

  async start(host: BackendHost): Promise<void> {
    this.host = host;
    this.sdk = await import('./aws-sdk.ts');
    const common = {
      region: this.config.region,
      ...(this.config.endpoint ? { endpoint: this.config.endpoint } : {}),
      // Retries are ours (aws-calls.ts), so the shared limiter sees every request.
      maxAttempts: 1,
    };
    this.batch = this.deps.batch ?? new this.sdk.BatchClient(common);
    this.logs = this.deps.logs ?? new this.sdk.CloudWatchLogsClient(common);
    this.secretsClient = this.deps.secrets ?? new this.sdk.SecretsManagerClient(common);
    const account = await this.principal();
    const key = `${account}/${this.config.region}/${this.config.endpoint ?? 'aws'}`;
    const burst = this.config.burst ?? Math.max(1, Math.ceil(this.config.maxTps));
    this.limiter = sharedLimiter(`batch/${key}`, this.config.maxTps, burst);
    const logsLimiter = sharedLimiter(`logs/${key}`, this.config.logsTps);
    const secretsLimiter = sharedLimiter(`secretsmanager/${key}`, this.config.maxTps, burst);
    this.limiterKeys = [`batch/${key}`, `logs/${key}`, `secretsmanager/${key}`];
    this.caller = new AwsCaller(this.limiter, this.config.throttleBudgetMs);
    this.logsCaller = new AwsCaller(logsLimiter, this.config.throttleBudgetMs);
    this.secretsCaller = new AwsCaller(secretsLimiter, this.config.throttleBudgetMs);
    this.secrets = new this.sdk.AttemptSecrets(this.secretsClient, this.secretsCaller, this.config.resourcePrefix);
    if (this.config.checkHealthOnStartup) {
      const { problems, warnings } = await this.sdk.batchHealthProblems(this.batch, this.caller, this.config);
      for (const warning of warnings) host.logger.warn(warning);
      if (problems.length > 0) {
        throw new ConfigError(
          `the batch backend cannot start:\n${problems.map((p) => `  - ${p}`).join('\n')}\n` +
            '(set AIRFLEET_BATCH_CHECK_HEALTH_ON_STARTUP=false to start anyway)',
        );
      }
    }
    this.schedulePoll(this.config.pollIntervalMs);
  }

  /** Who calls AWS (the access key), so that instances sharing credentials share one bucket. */
  private async principal(): Promise<string> {
    try {
      const credentials = await this.batch.config.credentials();
      return credentials.accessKeyId;
    } catch (error) {
      if (!this.config.checkHealthOnStartup) return 'unresolved';
      throw new ConfigError(
        `the batch backend found no AWS credentials (${(error as Error).message}): give the service a role, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or AWS_PROFILE`,
      );
    }
  }

  /** Submits in flight are bounded by what the limiter lets through in a couple of seconds. */
  freeCapacity(): number {
    return Math.max(0, Math.ceil(this.config.maxTps * 2) - this.submitsInFlight);
  }

  async submit(workload: Workload, attempt: number, context: SubmitContext): Promise<SubmitResult> {
    this.submitsInFlight++;
    const hasSecret = Object.keys(context.secretEnv).length > 0;
    try {
      const secretId = hasSecret
        ? await this.secrets.put(workload.id, attempt, context.secretEnv, context.signal).catch((error: Error) => {
            throw new SubmitError(
              `could not store the attempt's secret environment in Secrets Manager (${error.name}: ${error.message}); the executor needs secretsmanager:CreateSecret on ${this.secrets.nameOf(workload.id, attempt)}`,
            );
          })
        : null;
      const input = submitJobInput(workload, attempt, this.config, secretId);
      let jobId: string | null = null;
      for (let tries = 1; jobId === null; tries++) {
        try {
          const out = await this.caller.call('SubmitJob', () => this.batch.send(new this.sdk.SubmitJobCommand(input)), {
            signal: context.signal,
            maxAttempts: 1,
          });
          jobId = out.jobId!;
        } catch (error) {
          // A 5xx or a dropped connection leaves it open whether the job was made: look before trying
          // again, or the attempt could run twice.
          if (isTransient(error) && tries < this.config.maxSubmitAttempts) {
            jobId = await this.findJob(input.jobQueue!, workload.id, attempt, Date.now() - 60_000);
            continue;
          }
          if (hasSecret) await this.secrets.delete(workload.id, attempt).catch(() => undefined);
          const e = error as Error;
          throw new SubmitError(
            `Batch refused the job for queue '${input.jobQueue}' and definition '${input.jobDefinition}' after ${tries} tries (${e.name}: ${e.message})`,
          );
        }
      }
      this.watch(workload.id, attempt, jobId, hasSecret);
      return { ref: jobId };
    } finally {
      this.submitsInFlight--;
    }
  }

  async cancel(target: AttemptRef): Promise<void> {
    const w = this.watched.get(key(target.workloadId, target.attempt));
    const jobId = target.ref ?? w?.jobId;
    if (!jobId) return; // never submitted: the dispatcher stops it once the submit returns
    const watched = w ?? this.watch(target.workloadId, target.attempt, jobId, false);
    watched.cancelRequested = true;
    const status = watched.lastJob?.status;
    await this.stopJob(
      watched,
      status === 'RUNNING' || status === 'STARTING' ? 'terminate' : 'cancel',
      STOP_REASONS.cancelled,
    );
  }

  async fetchLogs(target: AttemptRef): Promise<void> {
    const w = this.watched.get(key(target.workloadId, target.attempt));
    const jobId = target.ref ?? w?.jobId;
    if (!jobId) return;
    const job = w?.lastJob ?? (await this.describe([jobId]))[0];
    if (!job) return;
    const copier =
      w?.logs ?? new this.sdk.LogCopier(this.host!, this.logs, this.logsCaller, target.workloadId, target.attempt);
    await copier.copy(job, this.config.logGroup, job.status === 'SUCCEEDED' || job.status === 'FAILED');
  }

  async reconcile(inFlight: InFlightAttempt[]): Promise<ReconcileVerdict[]> {
    const now = Date.now();
    const verdicts: ReconcileVerdict[] = [];
    const withRef = inFlight.filter((a) => a.ref);
    const described = new Map((await this.describe(withRef.map((a) => a.ref!))).map((j) => [j.jobId!, j]));
    const graceOver = (a: InFlightAttempt) => now - a.claimedAt > this.config.reconcileGraceSeconds * 1000;
    for (const a of inFlight) {
      const base = { workloadId: a.workloadId, attempt: a.attempt };
      if (a.ref) {
        const job = described.get(a.ref);
        if (job && this.isOurs(job, a.workloadId, a.attempt)) {
          this.watch(a.workloadId, a.attempt, a.ref, true).lastJob = job;
          verdicts.push({ ...base, verdict: 'attached', ref: a.ref });
        } else if (!graceOver(a)) {
          verdicts.push({ ...base, verdict: 'pending', message: `Batch does not list job ${a.ref} yet` });
        } else {
          verdicts.push({
            ...base,
            verdict: 'lost',
            started: a.state === 'running',
            message: `the Batch job ${a.ref} is no longer known to DescribeJobs`,
          });
        }
        continue;
      }
      // Claimed, but no job id recorded: the instance may have died between SubmitJob and the record.
      let found: string | null;
      try {
        found = await this.findAnywhere(a.workloadId, a.attempt, a.claimedAt - this.config.lookBackSeconds * 1000);
      } catch (error) {
        verdicts.push({ ...base, verdict: 'pending', message: `ListJobs failed: ${(error as Error).message}` });
        continue;
      }
      if (found) {
        this.watch(a.workloadId, a.attempt, found, true);
        verdicts.push({ ...base, verdict: 'attached', ref: found });
      } else if (!graceOver(a)) {
        // ListJobs is eventually consistent: a job made a moment ago may not be listed yet.
        verdicts.push({
          ...base,
          verdict: 'pending',
          message: 'no job listed yet; asking again after the grace period',
        });
      } else {
        await this.secrets.delete(a.workloadId, a.attempt).catch(() => undefined);
        verdicts.push({ ...base, verdict: 'absent' });
      }
    }
    return verdicts;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stop.abort(new Error('the batch backend is closing'));
    if (this.loopTimer) clearTimeout(this.loopTimer);
    this.loopTimer = null;
    await this.polling.catch(() => undefined);
    for (const k of this.limiterKeys) releaseLimiter(k);
    this.limiterKeys = [];
    if (!this.deps.batch) this.batch?.destroy();
    if (!this.deps.logs) this.logs?.destroy();
    if (!this.deps.secrets) this.secretsClient?.destroy();
  }

  /** The limiter's state and the calls made, per operation (for metrics and the benchmark). */
  usage(): { rate: number; throttles: number; calls: Record<string, number>; throttled: Record<string, number> } {
    return {
      rate: this.limiter.currentRate,
      throttles: this.limiter.throttles,
      calls: Object.fromEntries(this.caller.calls),
      throttled: Object.fromEntries(this.caller.throttled),
    };
  }

  // ---------------------------------------------------------------- the status loop

  private schedulePoll(delay: number): void {
    if (this.closed) return;
    this.loopTimer = setTimeout(() => {
      this.polling = this.poll()
        .catch((error: Error) => {
          if (!this.closed) this.host?.logger.warn({ err: error.message }, 'batch status pass failed; retrying');
        })
        .finally(() => this.schedulePoll(this.config.pollIntervalMs));
    }, delay);
  }

  /**
   * One pass over every live attempt this instance owns: DescribeJobs for 100 at a time, the changes
   * applied in one batch, the RUNNABLE timeout enforced, logs of running jobs copied when due.
   */
  async poll(): Promise<void> {
    const host = this.host!;
    const inFlight = await host.inFlight();
    const live = new Set(inFlight.map((a) => key(a.workloadId, a.attempt)));
    // Attempts that ended without us (cancelled while queued, failed by a deadline): forget them.
    for (const [k, w] of this.watched) {
      if (!live.has(k)) {
        this.watched.delete(k);
        if (w.hasSecret) await this.secrets.delete(w.workloadId, w.attempt).catch(() => undefined);
      }
    }
    const targets: Array<{ a: InFlightAttempt; jobId: string }> = [];
    for (const a of inFlight) {
      const jobId = a.ref ?? this.watched.get(key(a.workloadId, a.attempt))?.jobId;
      if (jobId) targets.push({ a, jobId });
    }
    if (targets.length === 0) return;
    this.stats.polls++;
    const jobs = new Map((await this.describe(targets.map((t) => t.jobId))).map((j) => [j.jobId!, j]));
    const updates: BackendUpdate[] = [];
    const ended: Watched[] = [];
    const now = Date.now();
    for (const { a, jobId } of targets) {
      const w = this.watched.get(key(a.workloadId, a.attempt)) ?? this.watch(a.workloadId, a.attempt, jobId, true);
      const job = jobs.get(jobId);
      const base = { workloadId: a.workloadId, attempt: a.attempt };
      if (!job) {
        w.missingSince ??= now;
        if (now - w.missingSince > this.config.reconcileGraceSeconds * 1000) {
          updates.push({
            ...base,
            state: 'failed',
            reason: 'lost',
            started: a.state === 'running',
            message: `the Batch job ${jobId} is no longer known to DescribeJobs`,
          });
          ended.push(w);
        }
        continue;
      }
      w.missingSince = null;
      w.lastJob = job;
      const seen = observe(job, w.cancelRequested);
      if (seen.kind === 'waiting') {
        if (w.cancelRequested && seen.status === 'STARTING') await this.stopJob(w, 'terminate', STOP_REASONS.cancelled);
        if (seen.status !== 'RUNNABLE' || w.cancelRequested) continue;
        w.firstRunnableAt ??= now;
        // Without dependencies a job is RUNNABLE from its creation on, and createdAt survives a restart.
        const since = (job.dependsOn ?? []).length === 0 && job.createdAt ? job.createdAt : w.firstRunnableAt;
        const waited = (now - since) / 1000;
        if (waited < this.config.runnableTimeoutSeconds) continue;
        const message = await this.unschedulableMessage(job, waited);
        await this.stopJob(w, 'terminate', `${STOP_REASONS.unschedulable}: ${message}`.slice(0, 1000));
        updates.push({ ...base, state: 'failed', reason: 'unschedulable', started: false, message });
        ended.push(w);
        continue;
      }
      if (seen.kind === 'running') {
        if (w.cancelRequested) await this.stopJob(w, 'terminate', STOP_REASONS.cancelled);
        if (a.state !== 'running') updates.push({ ...base, state: 'running' });
        this.copyLogsIfDue(w, now);
        continue;
      }
      // Ended: the whole log is copied before the end is reported, so a reader of the end finds it all.
      await w.logs
        .copy(job, this.config.logGroup, true, this.stop.signal)
        .catch((error: Error) =>
          this.host?.logger.warn({ workload: w.workloadId, err: error.message }, 'copying the Batch job log failed'),
        );
      if (seen.kind === 'succeeded') updates.push({ ...base, state: 'succeeded', exitCode: seen.exitCode });
      else if (seen.kind === 'cancelled')
        updates.push({ ...base, state: 'cancelled', exitCode: seen.exitCode, message: seen.message });
      else {
        updates.push({
          ...base,
          state: 'failed',
          reason: seen.reason,
          started: seen.started,
          exitCode: seen.exitCode,
          message: seen.message,
        });
      }
      ended.push(w);
    }
    if (updates.length > 0) await host.updateMany(updates);
    for (const w of ended) {
      this.watched.delete(key(w.workloadId, w.attempt));
      if (w.hasSecret) await this.secrets.delete(w.workloadId, w.attempt).catch(() => undefined);
    }
  }

  /** DescribeJobs, 100 ids a call. */
  private async describe(jobIds: string[]): Promise<JobDetail[]> {
    const out: JobDetail[] = [];
    for (let i = 0; i < jobIds.length; i += DESCRIBE_BATCH) {
      const ids = jobIds.slice(i, i + DESCRIBE_BATCH);
      const answer = await this.caller.call(
        'DescribeJobs',
        () => this.batch.send(new this.sdk.DescribeJobsCommand({ jobs: ids })),
        {
          signal: this.stop.signal,
        },
      );
      this.stats.describeCalls++;
      this.stats.jobsDescribed += ids.length;
      out.push(...(answer.jobs ?? []));
    }
    return out;
  }

  private copyLogsIfDue(w: Watched, now: number): void {
    if (w.copyingLogs || now - w.lastLogCopy < this.config.logIntervalMs || !w.lastJob) return;
    w.copyingLogs = true;
    w.lastLogCopy = now;
    void w.logs
      .copy(w.lastJob, this.config.logGroup, false, this.stop.signal)
      .catch((error: Error) =>
        this.host?.logger.warn(
          { workload: w.workloadId, err: error.message },
          'copying a running Batch job log failed',
        ),
      )
      .finally(() => {
        w.copyingLogs = false;
      });
  }

  /** CancelJob (before start) or TerminateJob, once each per attempt; the reason comes back as statusReason. */
  private async stopJob(w: Watched, how: 'cancel' | 'terminate', reason: string): Promise<void> {
    if (w.stopSent === 'terminate' || w.stopSent === how) return;
    const input = { jobId: w.jobId, reason };
    await this.caller.call(how === 'cancel' ? 'CancelJob' : 'TerminateJob', () =>
      how === 'cancel'
        ? this.batch.send(new this.sdk.CancelJobCommand(input))
        : this.batch.send(new this.sdk.TerminateJobCommand(input)),
    );
    w.stopSent = how;
  }

  /** Why the job waits: its own status reason and its queue's state, status and status reason. */
  private async unschedulableMessage(job: JobDetail, waited: number): Promise<string> {
    const parts = [
      `RUNNABLE for ${Math.round(waited)} s, longer than AIRFLEET_BATCH_RUNNABLE_TIMEOUT_SECONDS=${this.config.runnableTimeoutSeconds}`,
    ];
    if (job.statusReason) parts.push(`job: ${job.statusReason}`);
    const queue = job.jobQueue ? await this.queueDetail(job.jobQueue).catch(() => null) : null;
    if (queue) {
      parts.push(
        `queue ${queue.jobQueueName}: ${queue.state}/${queue.status}${queue.statusReason ? ` - ${queue.statusReason}` : ''}`,
      );
    }
    return parts.join('; ');
  }

  private async queueDetail(queue: string): Promise<JobQueueDetail | null> {
    const cached = this.queues.get(queue);
    if (cached && Date.now() - cached.at < QUEUE_CACHE_MS) return cached.detail;
    const answer = await this.caller.call('DescribeJobQueues', () =>
      this.batch.send(new this.sdk.DescribeJobQueuesCommand({ jobQueues: [queue] })),
    );
    const detail = answer.jobQueues?.[0] ?? null;
    this.queues.set(queue, { at: Date.now(), detail });
    return detail;
  }

  // ---------------------------------------------------------------- finding jobs again

  private watch(workloadId: string, attempt: number, jobId: string, hasSecret: boolean): Watched {
    const k = key(workloadId, attempt);
    const existing = this.watched.get(k);
    if (existing) return existing;
    const w: Watched = {
      workloadId,
      attempt,
      jobId,
      logs: new this.sdk.LogCopier(this.host!, this.logs, this.logsCaller, workloadId, attempt),
      cancelRequested: false,
      stopSent: null,
      lastJob: null,
      firstRunnableAt: null,
      missingSince: null,
      lastLogCopy: 0,
      copyingLogs: false,
      hasSecret,
    };
    this.watched.set(k, w);
    return w;
  }

  private isOurs(job: Pick<JobDetail, 'tags' | 'jobName'>, workloadId: string, attempt: number): boolean {
    if (job.tags?.[TAG_WORKLOAD] !== undefined) {
      return job.tags[TAG_WORKLOAD] === workloadId && job.tags[TAG_ATTEMPT] === String(attempt);
    }
    return job.jobName === jobName(this.config.jobNamePrefix, workloadId, attempt);
  }

  /** Every queue the attempt may have gone to: the configured ones (execConfig can name others: rare). */
  private candidateQueues(): string[] {
    return [...new Set([this.config.jobQueue, ...Object.values(this.config.queues).map((q) => q.jobQueue)])];
  }

  private async findAnywhere(workloadId: string, attempt: number, notBefore: number): Promise<string | null> {
    for (const queue of this.candidateQueues()) {
      const found = await this.findJob(queue, workloadId, attempt, notBefore);
      if (found) return found;
    }
    return null;
  }

  /**
   * The attempt's job in `queue`, by name (ListJobs with a JOB_NAME filter returns jobs of every status),
   * confirmed by its tags, created no earlier than `notBefore` (the bounded look-back). Should a crash
   * have left two, the first is kept and the others are terminated: an attempt never runs twice.
   */
  private async findJob(queue: string, workloadId: string, attempt: number, notBefore: number): Promise<string | null> {
    const name = jobName(this.config.jobNamePrefix, workloadId, attempt);
    const summaries: JobSummary[] = [];
    let nextToken: string | undefined;
    for (let page = 0; page < 5; page++) {
      const answer = await this.caller.call('ListJobs', () =>
        this.batch.send(
          new this.sdk.ListJobsCommand({
            jobQueue: queue,
            filters: [{ name: 'JOB_NAME', values: [name] }],
            maxResults: 100,
            ...(nextToken ? { nextToken } : {}),
          }),
        ),
      );
      summaries.push(
        ...(answer.jobSummaryList ?? []).filter((s) => s.jobName === name && (s.createdAt ?? 0) >= notBefore),
      );
      nextToken = answer.nextToken;
      if (!nextToken) break;
    }
    if (summaries.length === 0) return null;
    const details = (await this.describe(summaries.map((s) => s.jobId!))).filter((j) =>
      this.isOurs(j, workloadId, attempt),
    );
    details.sort((x, y) => (x.createdAt ?? 0) - (y.createdAt ?? 0));
    for (const extra of details.slice(1)) {
      this.host?.logger.warn(
        { workload: workloadId, attempt, job: extra.jobId },
        'terminating a duplicate Batch job of one attempt',
      );
      await this.caller
        .call('TerminateJob', () =>
          this.batch.send(
            new this.sdk.TerminateJobCommand({ jobId: extra.jobId!, reason: 'airfleet: duplicate job of one attempt' }),
          ),
        )
        .catch(() => undefined);
    }
    return details[0]?.jobId ?? null;
  }
}

function key(workloadId: string, attempt: number): string {
  return `${workloadId}#${attempt}`;
}
