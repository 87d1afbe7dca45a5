import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
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
import { describeAllocation, type Observation, observeAllocation, placementFailure } from './alloc-status.ts';
import { EventWatcher, jobPrefixFilter } from './event-watcher.ts';
import { type NomadExecConfig, nomadExecConfig } from './exec-config.ts';
import { nomadHealthProblems } from './health-check.ts';
import {
  buildJob,
  isJsonTemplate,
  JobSpecError,
  jobFromJson,
  jobId,
  META_ATTEMPT,
  META_WORKLOAD,
  secretVariablePath,
} from './job-spec.ts';
import { NomadLogCopier } from './log-copier.ts';
import { isTransient, NomadApiError, NomadClient } from './nomad-client.ts';
import type { NomadConfig } from './nomad-config.ts';
import type { Allocation, Evaluation, NomadJob } from './nomad-types.ts';

interface Watched {
  workloadId: string;
  attempt: number;
  jobId: string;
  /** null: not known (re-attached after a restart): the variable is deleted at the end just in case. */
  hasSecret: boolean | null;
  secretDeleted: boolean;
  stopRequested: boolean;
  alloc: Allocation | null;
  evals: Map<string, Evaluation>;
  reportedRunning: boolean;
  ended: boolean;
  logs: NomadLogCopier;
  lastLogCopy: number;
  copying: boolean;
  /** The whole log was copied after the end (the service's own fetchLogs then has nothing to do). */
  logsFinal: boolean;
  /** When the job was registered (ms): ours, or Nomad's SubmitTime for a job found by reconcile. */
  submittedAt: number | null;
  /**
   * Attached by reconcile at this time and not yet adopted: the service records the adoption after
   * reconcile returns, and an end reported before it would be refused (the attempt is not ours yet). Its
   * state is read once it shows in this instance's `inFlight()`.
   */
  attachedAt: number | null;
}

/**
 * Nomad as a push backend: one `batch` job per attempt (docs/nomad-backend.md).
 *
 * - submit: the secret environment into the Nomad variable `nomad/jobs/<job id>` (read by the task through a
 *   `template` block, so it is in no job spec), then one register with `EnforceIndex` 0, so a repeated
 *   register after a lost answer cannot make a second job;
 * - watching: one event stream per instance, resumed from the index stored in the database, with a
 *   blocking-query resync after every reconnection; no request per job per tick;
 * - the end: logs copied (every rotated file), the Nomad context of a failure written into the workload's
 *   log, the end reported, the variable deleted, the job purged after `purgeDelaySeconds`;
 * - pending timeout: an attempt not running `allocPendingTimeoutSeconds` after its claim (the claim time is
 *   in the database, so a restart does not reset it) is stopped and fails `unschedulable` with Nomad's
 *   placement reasons (FailedTGAllocs);
 * - reconcile: one job listing by prefix finds the jobs of attempts submitted before a crash.
 */
export class NomadBackend implements Backend {
  readonly name = 'nomad' as const;
  readonly mode = 'push' as const;
  readonly config: NomadConfig;
  readonly client: NomadClient;
  private host: BackendHost | null = null;
  private watcher: EventWatcher | null = null;
  private readonly watched = new Map<string, Watched>();
  private readonly templates = new Map<string, Promise<NomadJob>>();
  private defaultTemplate: NomadJob | null = null;
  private submitsInFlight = 0;
  private pending: BackendUpdate[] = [];
  private flushing: Promise<void> | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> = Promise.resolve();
  private readonly purgeTimers = new Set<NodeJS.Timeout>();
  private readonly work = new Set<Promise<unknown>>();
  private readonly stop = new AbortController();
  private closed = false;

  constructor(config: NomadConfig) {
    this.config = config;
    this.client = new NomadClient(config);
  }

  async start(host: BackendHost): Promise<void> {
    this.host = host;
    if (this.config.checkHealthOnStartup) {
      const problems = await nomadHealthProblems(this.client, this.config);
      if (problems.length > 0) {
        throw new ConfigError(
          `the nomad backend cannot start:\n${problems.map((p) => `  - ${p}`).join('\n')}\n` +
            '(set AIRFLEET_NOMAD_CHECK_HEALTH_ON_STARTUP=false to start anyway)',
        );
      }
    }
    if (this.config.jobTemplate) {
      try {
        this.defaultTemplate = await this.parseTemplate(this.config.jobTemplate, 'AIRFLEET_NOMAD_JOB_TEMPLATE');
      } catch (error) {
        throw new ConfigError(`the nomad backend's job template is unusable: ${(error as Error).message}`);
      }
    }
    this.watcher = new EventWatcher(
      this.client,
      host,
      { apply: (allocs, evals) => this.apply(allocs, evals) },
      { jobPrefix: `${this.config.jobPrefix}-`, reconnectMs: this.config.reconnectMs, idleMs: 35_000 },
    );
    await this.watcher.start();
    this.scheduleTick();
  }

  freeCapacity(): number {
    return Math.max(0, this.config.parallelism - this.watched.size - this.submitsInFlight);
  }

  /** Requests made to Nomad and the event stream's figures (metrics, tests, the benchmark). */
  usage(): { requests: number; calls: Record<string, number>; stream: EventWatcher['stats'] | null } {
    return {
      requests: this.client.requestCount,
      calls: Object.fromEntries(this.client.calls),
      stream: this.watcher?.stats ?? null,
    };
  }

  // ---------------------------------------------------------------- submit

  async submit(workload: Workload, attempt: number, context: SubmitContext): Promise<SubmitResult> {
    this.submitsInFlight++;
    const id = jobId(this.config.jobPrefix, workload.id, attempt);
    const hasSecret = Object.keys(context.secretEnv).length > 0;
    try {
      const parsed = nomadExecConfig.safeParse(workload.execConfig.nomad ?? {});
      if (!parsed.success) {
        throw new SubmitError(
          `execConfig.nomad is invalid: ${parsed.error.issues.map((i) => `execConfig.nomad.${i.path.join('.')}: ${i.message}`).join('; ')}`,
        );
      }
      const exec = parsed.data;
      let job: NomadJob;
      try {
        const template = await this.templateFor(exec);
        job = buildJob(workload, attempt, this.config, template, exec, hasSecret ? secretVariablePath(id) : null);
      } catch (error) {
        if (error instanceof JobSpecError) throw new SubmitError(error.message);
        throw error;
      }
      // Watched before the register: its first events may arrive before the answer does.
      const w = this.watch(workload.id, attempt, id, hasSecret);
      if (hasSecret) {
        const path = secretVariablePath(id);
        await this.client
          .request('PUT', `/v1/var/${path}`, {
            body: { Namespace: this.config.namespace, Path: path, Items: context.secretEnv },
            signal: context.signal,
          })
          .catch((error: Error) => {
            this.watched.delete(id);
            throw new SubmitError(
              `could not store the attempt's secret environment in the Nomad variable ${path} (${error.message}); the token needs variables write in namespace ${this.config.namespace}`,
            );
          });
      }
      w.submittedAt = Date.now();
      await this.register(job, workload.id, attempt, context.signal).catch(async (error: Error) => {
        this.watched.delete(id);
        if (hasSecret) await this.deleteSecret(w).catch(() => undefined);
        throw error;
      });
      return { ref: id };
    } finally {
      this.submitsInFlight--;
    }
  }

  /**
   * One register with `EnforceIndex` and `JobModifyIndex` 0 ("only if no such job exists"): after a 5xx or
   * a dropped connection it is repeated as is, and Nomad refuses the repeat if the first one made the job.
   */
  private async register(job: NomadJob, workloadId: string, attempt: number, signal: AbortSignal): Promise<void> {
    for (let tries = 1; ; tries++) {
      try {
        await this.client.request('PUT', '/v1/jobs', {
          body: { Job: job, EnforceIndex: true, JobModifyIndex: 0 },
          signal,
        });
        return;
      } catch (error) {
        if (error instanceof NomadApiError && /enforcing job modify index/i.test(error.message)) {
          // It exists: ours from a try whose answer was lost, or a crash before the record.
          const existing = await this.client
            .request<NomadJob>('GET', `/v1/job/${encodeURIComponent(job.ID!)}`, { signal })
            .then((a) => a.data)
            .catch(() => null);
          if (existing?.Meta?.[META_WORKLOAD] === workloadId && existing.Meta?.[META_ATTEMPT] === String(attempt)) {
            return;
          }
          throw new SubmitError(`a Nomad job ${job.ID} exists that is not this attempt's: remove it`);
        }
        if (isTransient(error) && tries < this.config.maxSubmitAttempts && !signal.aborted) {
          await new Promise((r) => setTimeout(r, this.config.submitBackoffMs * 2 ** (tries - 1)));
          continue;
        }
        throw new SubmitError(
          `Nomad refused the job ${job.ID} after ${tries} ${tries === 1 ? 'try' : 'tries'} (${(error as Error).message})`,
        );
      }
    }
  }

  private templateFor(exec: NomadExecConfig): Promise<NomadJob | null> {
    if (exec.template) return this.cachedTemplate(exec.template, 'execConfig.nomad.template');
    if (exec.templatePath) {
      const dir = this.config.templateDir;
      if (!dir) {
        return Promise.reject(
          new JobSpecError('execConfig.nomad.templatePath needs AIRFLEET_NOMAD_TEMPLATE_DIR on the executor'),
        );
      }
      const file = resolve(dir, exec.templatePath);
      if (!file.startsWith(join(resolve(dir), '/'))) {
        return Promise.reject(
          new JobSpecError('execConfig.nomad.templatePath must stay inside the template directory'),
        );
      }
      return readFile(file, 'utf8').then(
        (text) => this.cachedTemplate(text, `execConfig.nomad.templatePath ${exec.templatePath}`),
        (error: NodeJS.ErrnoException) => {
          throw new JobSpecError(`execConfig.nomad.templatePath ${exec.templatePath}: cannot read it (${error.code})`);
        },
      );
    }
    return Promise.resolve(this.defaultTemplate);
  }

  private cachedTemplate(text: string, where: string): Promise<NomadJob> {
    const key = createHash('sha256').update(text).digest('hex');
    let cached = this.templates.get(key);
    if (!cached) {
      cached = this.parseTemplate(text, where);
      cached.catch(() => this.templates.delete(key));
      if (this.templates.size > 100) this.templates.clear();
      this.templates.set(key, cached);
    }
    return cached;
  }

  /** JSON as is; HCL through the server's own parser (`/v1/jobs/parse`), as `nomad job run` does. */
  private async parseTemplate(text: string, where: string): Promise<NomadJob> {
    if (isJsonTemplate(text)) return jobFromJson(text, where);
    try {
      const answer = await this.client.request<NomadJob>('POST', '/v1/jobs/parse', {
        body: { JobHCL: text, Canonicalize: false },
      });
      return jobFromJson(JSON.stringify(answer.data), where);
    } catch (error) {
      if (error instanceof NomadApiError && error.status < 500) {
        throw new JobSpecError(`${where}: Nomad could not parse the HCL (${error.message})`);
      }
      throw error;
    }
  }

  // ---------------------------------------------------------------- watching

  private watch(workloadId: string, attempt: number, id: string, hasSecret: boolean | null): Watched {
    const existing = this.watched.get(id);
    if (existing) return existing;
    const w: Watched = {
      workloadId,
      attempt,
      jobId: id,
      hasSecret,
      secretDeleted: false,
      stopRequested: false,
      alloc: null,
      evals: new Map(),
      reportedRunning: false,
      ended: false,
      logs: new NomadLogCopier(this.host!, this.client, workloadId, attempt),
      lastLogCopy: 0,
      copying: false,
      logsFinal: false,
      submittedAt: null,
      attachedAt: null,
    };
    this.watched.set(id, w);
    return w;
  }

  /** Newest state of allocations and evaluations, from the stream or a resync. */
  private apply(allocations: Allocation[], evaluations: Evaluation[]): void {
    for (const e of evaluations) {
      const w = this.watched.get(e.JobID);
      if (!w || w.ended) continue;
      const known = w.evals.get(e.ID);
      if (!known || (known.ModifyIndex ?? 0) <= (e.ModifyIndex ?? 0)) w.evals.set(e.ID, e);
    }
    for (const a of allocations) {
      const w = this.watched.get(a.JobID);
      if (!w || w.ended || w.attachedAt !== null) continue;
      const current = w.alloc;
      if (current && current.ID === a.ID && (current.ModifyIndex ?? 0) > (a.ModifyIndex ?? 0)) continue;
      if (current && current.ID !== a.ID && (current.CreateIndex ?? 0) > (a.CreateIndex ?? 0)) continue;
      w.alloc = a;
      this.observe(w, observeAllocation(a, w.stopRequested));
    }
  }

  private observe(w: Watched, seen: Observation): void {
    const base = { workloadId: w.workloadId, attempt: w.attempt };
    if (seen.kind === 'waiting') return;
    if (seen.kind === 'running') {
      if (!w.reportedRunning) {
        w.reportedRunning = true;
        // The first copy one interval after the start: a short task's whole log comes with its end instead.
        w.lastLogCopy = Date.now();
        void this.enqueue({ ...base, state: 'running' });
        // The template has rendered by the time the task starts: the variable is no longer needed.
        if (w.hasSecret !== false) this.track(this.deleteSecret(w));
      }
      this.copyLogsIfDue(w, Date.now());
      return;
    }
    w.ended = true;
    let update: BackendUpdate;
    if (seen.kind === 'succeeded') update = { ...base, state: 'succeeded', exitCode: seen.exitCode };
    else if (seen.kind === 'cancelled') update = { ...base, state: 'cancelled', exitCode: seen.exitCode };
    else {
      update = {
        ...base,
        state: 'failed',
        reason: seen.reason,
        started: seen.started,
        exitCode: seen.exitCode,
        message: seen.message,
      };
    }
    this.track(this.finish(w, update));
  }

  /** The end: the whole log first, then the Nomad context, the end itself, and the clean-up. */
  private async finish(w: Watched, update: BackendUpdate, notes: string[] = []): Promise<void> {
    const alloc = w.alloc;
    if (alloc && alloc.ClientStatus !== 'lost') {
      await w.logs
        .copy(alloc.ID, taskName(alloc), this.stop.signal)
        .catch((error: Error) =>
          this.host?.logger.warn({ workload: w.workloadId, err: error.message }, 'copying the Nomad task logs failed'),
        );
    }
    w.logsFinal = true;
    if (update.state === 'succeeded' && w.logs.gaps.length > 0) {
      await w.logs.note(w.logs.gaps).catch(() => undefined);
    }
    if (update.state !== 'succeeded') {
      const lines = [...notes, ...w.logs.gaps];
      if (update.state === 'failed')
        lines.push(`nomad job ${w.jobId} failed: ${update.reason}: ${update.message ?? ''}`);
      else lines.push(`nomad job ${w.jobId} was stopped on request`);
      if (alloc) lines.push(...describeAllocation(alloc));
      for (const e of w.evals.values()) {
        const why = placementFailure(e);
        lines.push(
          `evaluation ${e.ID} (${e.TriggeredBy ?? '?'}): ${e.Status}${why ? `; placement failed: ${why}` : ''}`,
        );
      }
      await w.logs
        .note(lines)
        .catch((error: Error) => this.host?.logger.warn({ err: error.message }, 'writing the Nomad context failed'));
    }
    await this.enqueue(update);
    this.watched.delete(w.jobId);
    if (w.hasSecret !== false) await this.deleteSecret(w).catch(() => undefined);
    this.schedulePurge(w.jobId);
  }

  private async deleteSecret(w: Watched): Promise<void> {
    if (w.secretDeleted) return;
    w.secretDeleted = true;
    const path = secretVariablePath(w.jobId);
    try {
      await this.client.request('DELETE', `/v1/var/${path}`, {});
    } catch (error) {
      if (error instanceof NomadApiError && error.status === 404) return;
      w.secretDeleted = false;
      this.host?.logger.warn({ job: w.jobId, err: (error as Error).message }, 'deleting the secret variable failed');
    }
  }

  private schedulePurge(id: string): void {
    const purge = () =>
      this.client.request('DELETE', `/v1/job/${encodeURIComponent(id)}`, { query: { purge: true } }).catch((error) => {
        if (!(error instanceof NomadApiError && error.status === 404)) {
          this.host?.logger.warn({ job: id, err: (error as Error).message }, 'purging the Nomad job failed');
        }
      });
    if (this.config.purgeDelaySeconds === 0) {
      this.track(purge());
      return;
    }
    const timer = setTimeout(() => {
      this.purgeTimers.delete(timer);
      this.track(purge());
    }, this.config.purgeDelaySeconds * 1000);
    timer.unref();
    this.purgeTimers.add(timer);
  }

  /** Updates go to the service in batches: a burst of events is one `updateMany`. */
  private enqueue(update: BackendUpdate): Promise<void> {
    this.pending.push(update);
    this.flushing ??= new Promise<void>((r) => setImmediate(r)).then(() => {
      const batch = this.pending;
      this.pending = [];
      this.flushing = null;
      return this.host!.updateMany(batch);
    });
    return this.flushing;
  }

  private copyLogsIfDue(w: Watched, now: number): void {
    if (w.copying || !w.alloc || now - w.lastLogCopy < this.config.logIntervalMs) return;
    w.copying = true;
    w.lastLogCopy = now;
    const alloc = w.alloc;
    this.track(
      w.logs
        .copy(alloc.ID, taskName(alloc), this.stop.signal)
        .catch((error: Error) =>
          this.host?.logger.warn({ workload: w.workloadId, err: error.message }, 'copying running task logs failed'),
        )
        .finally(() => {
          w.copying = false;
        }),
    );
  }

  private track<T>(p: Promise<T>): void {
    const tracked = p.catch(() => undefined);
    this.work.add(tracked);
    void tracked.finally(() => this.work.delete(tracked));
  }

  // ---------------------------------------------------------------- the housekeeping pass

  private scheduleTick(): void {
    if (this.closed) return;
    this.tickTimer = setTimeout(() => {
      this.ticking = this.tick()
        .catch((error: Error) => {
          if (!this.closed) this.host?.logger.warn({ err: error.message }, 'nomad housekeeping pass failed');
        })
        .finally(() => this.scheduleTick());
    }, this.config.tickMs);
  }

  /**
   * One database query (this instance's live attempts), no Nomad request unless something is due: pending
   * timeouts (attempts Nomad has not placed, or whose client has not begun, `allocPendingTimeoutSeconds` after
   * their claim), log copies of running tasks, and forgetting attempts that ended without us.
   */
  async tick(): Promise<void> {
    if (this.watched.size === 0) return;
    const inFlight = await this.host!.inFlight();
    const now = Date.now();
    const live = new Set<string>(inFlight.map((a) => a.ref ?? jobId(this.config.jobPrefix, a.workloadId, a.attempt)));
    // Re-attached attempts now ours: their current state, in two requests for all of them.
    const adopted = [...this.watched.values()].filter((w) => w.attachedAt !== null && live.has(w.jobId));
    if (adopted.length > 0) {
      for (const w of adopted) w.attachedAt = null;
      await this.resyncAttached();
    }
    for (const a of inFlight) {
      const id = a.ref ?? jobId(this.config.jobPrefix, a.workloadId, a.attempt);
      const w = this.watched.get(id);
      if (!w || w.ended || w.attachedAt !== null) continue;
      if (w.reportedRunning) {
        this.copyLogsIfDue(w, now);
        continue;
      }
      // From the claim (in the database) or the register, whichever is later: a claim that waited for a
      // submit slot has not been waiting for Nomad.
      const waited = (now - Math.max(a.claimedAt, w.submittedAt ?? 0)) / 1000;
      if (a.state === 'running' || waited < this.config.allocPendingTimeoutSeconds || clientBegan(w.alloc)) continue;
      w.ended = true;
      this.track(this.unschedulable(w, waited));
    }
    for (const [id, w] of this.watched) {
      // Ended in the database without an end from Nomad (a deadline, a cancel of a job never placed...).
      // A re-attached attempt not adopted yet is not ours to stop (for a minute: then it never will be).
      if (w.attachedAt !== null && now - w.attachedAt < 60_000) continue;
      if (!live.has(id) && !w.ended && this.submitsInFlight === 0) {
        w.ended = true;
        this.watched.delete(id);
        if (w.hasSecret !== false) this.track(this.deleteSecret(w));
        this.track(this.stopJob(id).then(() => this.schedulePurge(id)));
      }
    }
  }

  private async unschedulable(w: Watched, waited: number): Promise<void> {
    // The event stream may lag behind under load: ask Nomad itself before failing anything (two requests,
    // only for an attempt past its timeout).
    const id = encodeURIComponent(w.jobId);
    const [allocs, evals] = await Promise.all([
      this.client.request<Allocation[]>('GET', `/v1/job/${id}/allocations`, {}).catch(() => null),
      this.client.request<Evaluation[]>('GET', `/v1/job/${id}/evaluations`, {}).catch(() => null),
    ]);
    w.ended = false;
    this.apply(allocs?.data ?? [], evals?.data ?? []);
    if (w.ended || w.reportedRunning || clientBegan(w.alloc)) return;
    w.ended = true;
    const reasons = [...w.evals.values()].map(placementFailure).filter(Boolean);
    const message = `not running ${Math.round(waited)} s after submission, longer than AIRFLEET_NOMAD_ALLOC_PENDING_TIMEOUT_SECONDS=${
      this.config.allocPendingTimeoutSeconds
    }${reasons.length > 0 ? `; Nomad could not place it: ${reasons.at(-1)}` : w.alloc ? `; allocation ${w.alloc.ID} is ${w.alloc.ClientStatus}` : ''}`;
    await this.stopJob(w.jobId).catch(() => undefined);
    await this.finish(w, {
      workloadId: w.workloadId,
      attempt: w.attempt,
      state: 'failed',
      reason: 'unschedulable',
      started: false,
      message,
    });
  }

  private async stopJob(id: string): Promise<void> {
    try {
      await this.client.request('DELETE', `/v1/job/${encodeURIComponent(id)}`, {});
    } catch (error) {
      if (error instanceof NomadApiError && error.status === 404) return;
      throw error;
    }
  }

  // ---------------------------------------------------------------- cancel, logs, reconcile

  async cancel(target: AttemptRef): Promise<void> {
    const id = target.ref ?? jobId(this.config.jobPrefix, target.workloadId, target.attempt);
    const w = this.watched.get(id) ?? this.watch(target.workloadId, target.attempt, id, null);
    w.stopRequested = true;
    await this.stopJob(id);
    // A job never placed has no allocation to report its end: the stop itself is the end.
    const alloc = w.alloc;
    if (!w.ended && (!alloc || (alloc.ClientStatus === 'pending' && !alloc.TaskStates))) {
      w.ended = true;
      this.track(this.finish(w, { workloadId: w.workloadId, attempt: w.attempt, state: 'cancelled' }));
    }
  }

  async fetchLogs(target: AttemptRef): Promise<void> {
    const id = target.ref ?? jobId(this.config.jobPrefix, target.workloadId, target.attempt);
    const w = this.watched.get(id);
    if (w?.logsFinal) return;
    let alloc = w?.alloc ?? null;
    if (!alloc) {
      const answer = await this.client.request<Allocation[]>(
        'GET',
        `/v1/job/${encodeURIComponent(id)}/allocations`,
        {},
      );
      alloc = (answer.data ?? []).sort((a, b) => (b.CreateIndex ?? 0) - (a.CreateIndex ?? 0))[0] ?? null;
    }
    if (!alloc) return;
    const copier = w?.logs ?? new NomadLogCopier(this.host!, this.client, target.workloadId, target.attempt);
    await copier.copy(alloc.ID, taskName(alloc));
  }

  /**
   * One listing of airfleet's jobs (`/v1/jobs?prefix=`) answers for every attempt: a job found is attached
   * (and its state comes with the next resync); none for a `submitting` attempt means the register never
   * went out (absent: submitted again); none for a later state means it was purged or lost.
   */
  async reconcile(inFlight: InFlightAttempt[]): Promise<ReconcileVerdict[]> {
    if (inFlight.length === 0) return [];
    let jobs: Array<{ ID: string; Status?: string; SubmitTime?: number; Meta?: Record<string, string> }>;
    try {
      jobs =
        (
          await this.client.request<typeof jobs>('GET', '/v1/jobs', {
            query: { prefix: `${this.config.jobPrefix}-`, meta: true },
          })
        ).data ?? [];
    } catch (error) {
      return inFlight.map((a) => ({
        workloadId: a.workloadId,
        attempt: a.attempt,
        verdict: 'pending' as const,
        message: `listing Nomad jobs failed: ${(error as Error).message}`,
      }));
    }
    const byId = new Map(jobs.map((j) => [j.ID, j]));
    const verdicts: ReconcileVerdict[] = [];
    for (const a of inFlight) {
      const id = a.ref ?? jobId(this.config.jobPrefix, a.workloadId, a.attempt);
      const base = { workloadId: a.workloadId, attempt: a.attempt };
      const found = byId.get(id);
      if (found) {
        const w = this.watch(a.workloadId, a.attempt, id, null);
        w.attachedAt = Date.now();
        // Nomad's SubmitTime (ns) survives our restart: the pending timeout goes on from there.
        if (found.SubmitTime) w.submittedAt = Math.floor(found.SubmitTime / 1e6);
        verdicts.push({ ...base, verdict: 'attached', ref: id });
      } else if (a.state === 'submitting') {
        // The variable may have been written before the crash.
        await this.client.request('DELETE', `/v1/var/${secretVariablePath(id)}`, {}).catch(() => undefined);
        verdicts.push({ ...base, verdict: 'absent' });
      } else {
        verdicts.push({
          ...base,
          verdict: 'lost',
          started: a.state === 'running',
          message: `the Nomad job ${id} no longer exists (stopped and purged outside airfleet, or garbage-collected)`,
        });
      }
    }
    return verdicts;
  }

  /** The current allocations and evaluations of attached jobs, in two requests. */
  private async resyncAttached(): Promise<void> {
    const filter = jobPrefixFilter(`${this.config.jobPrefix}-`);
    const [allocs, evals] = await Promise.all([
      this.client.request<Allocation[]>('GET', '/v1/allocations', { query: { filter } }),
      this.client.request<Evaluation[]>('GET', '/v1/evaluations', { query: { filter } }),
    ]);
    const mine = <T extends { JobID: string }>(xs: T[] | null) => (xs ?? []).filter((x) => this.watched.has(x.JobID));
    this.apply(mine(allocs.data), mine(evals.data));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stop.abort(new Error('the nomad backend is closing'));
    if (this.tickTimer) clearTimeout(this.tickTimer);
    for (const t of this.purgeTimers) clearTimeout(t);
    await this.ticking.catch(() => undefined);
    await this.watcher?.close();
    await Promise.allSettled([...this.work]);
    if (this.flushing) await this.flushing.catch(() => undefined);
    this.client.close();
  }
}

/**
 * Whether a client took the allocation on (it wrote task events beyond "Received"): from then on the wait is
 * the client's (image download, start), bounded by the workload's own `pendingSeconds`, not a placement.
 */
function clientBegan(alloc: Allocation | null): boolean {
  if (!alloc) return false;
  if (alloc.ClientStatus !== 'pending') return true;
  return Object.values(alloc.TaskStates ?? {}).some((t) => (t.Events ?? []).some((e) => e.Type !== 'Received'));
}

function taskName(alloc: Allocation): string {
  return Object.keys(alloc.TaskStates ?? {})[0] ?? 'task';
}
