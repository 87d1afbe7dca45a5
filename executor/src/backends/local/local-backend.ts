import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Workload } from '../../domain/workload.ts';
import { LOG_STREAMS, type LogStream } from '../../store/logs.ts';
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
import { findRunProcesses, RunDir, SUPERVISOR_MARK, SUPERVISOR_SCRIPT } from './run-dir.ts';

export interface LocalBackendOptions {
  /** Where run directories live (output files, exit codes): must survive a restart of the service. */
  dir: string;
  /** Most tasks running at once; the dispatcher claims no more than the free room. */
  concurrency: number;
  /** After SIGTERM, how long a cancelled task gets before SIGKILL, ms. */
  killGraceMs: number;
  /** How often output files are copied into the log store and adopted runs are checked, ms. */
  tickMs: number;
}

interface Run {
  dir: RunDir;
  workloadId: string;
  attempt: number;
  /** Process group of the supervising shell (its pid). */
  pid: number;
  offsets: Record<LogStream, number>;
  cancelled: boolean;
  /** Set once the end was seen; the run is forgotten when the update is recorded. */
  ending: boolean;
  killTimer: NodeJS.Timeout | null;
  copying: Promise<void>;
  /**
   * The delivery of its `running` update. The end is delivered after it: two deliveries racing let a fast
   * task's end land first, and the start was then dropped as stale (no `running` in its history).
   */
  startReported: Promise<unknown>;
}

const CHUNK = 256 * 1024;

/**
 * Runs each workload as a process on the service's own host: a push backend with no infrastructure,
 * for the embedded default and development (like Airflow's LocalExecutor), and the smallest real driver
 * of the dispatcher and of reconcile.
 *
 * Each attempt runs under a supervising shell in its own process group, writing its output to files and
 * its exit code to a file of its run directory. Because nothing lives only in memory or in a pipe, a
 * service that crashes and comes back finds every run again (by its command line in /proc) and either
 * re-attaches to it, output and all, or reads how it ended. The `image` of a workload is ignored: the
 * command runs as it is on this host.
 */
export class LocalBackend implements Backend {
  readonly name = 'local' as const;
  readonly mode = 'push' as const;
  private readonly options: LocalBackendOptions;
  private readonly runs = new Map<string, Run>();
  private host: BackendHost | null = null;
  private ticker: NodeJS.Timeout | null = null;

  constructor(options: LocalBackendOptions) {
    this.options = options;
  }

  freeCapacity(): number {
    return this.options.concurrency - this.runs.size;
  }

  async start(host: BackendHost): Promise<void> {
    try {
      mkdirSync(this.options.dir, { recursive: true, mode: 0o700 });
    } catch {
      // Each submit then fails with the reason, as a SubmitError (and the service keeps serving the rest).
    }
    this.host = host;
    this.ticker = setInterval(() => this.tick(), this.options.tickMs);
  }

  async submit(workload: Workload, attempt: number, context: SubmitContext): Promise<SubmitResult> {
    const dir = new RunDir(this.options.dir, workload.id, attempt);
    const [program] = workload.command;
    if (!program) throw new SubmitError('the command is empty');
    let out: number | null = null;
    let err: number | null = null;
    try {
      try {
        ({ out, err } = dir.create());
      } catch (error) {
        // The root went away (removed by hand while the service ran): make it again, once.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        mkdirSync(this.options.dir, { recursive: true, mode: 0o700 });
        ({ out, err } = dir.create());
      }
      const child = spawn('/bin/sh', ['-c', SUPERVISOR_SCRIPT, SUPERVISOR_MARK, dir.exitFile, ...workload.command], {
        cwd: dir.workDir,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: process.env.HOME ?? '/tmp',
          AIRFLEET_WORKLOAD_ID: workload.id,
          AIRFLEET_ATTEMPT: String(attempt),
          ...workload.env,
          // In the environment, never the command line: a process listing shows arguments to every user.
          ...context.secretEnv,
        },
        stdio: ['ignore', out, err],
        // Its own process group: cancelling stops the task's children too, and the run survives a crash
        // of the service (re-attached by reconcile).
        detached: true,
      });
      await once(child, 'spawn');
      child.unref();
      const run = this.track(dir, workload.id, attempt, child.pid!);
      child.on('exit', () => void this.finish(run));
      // The shell started the task's command: from here on the task may have side effects.
      run.startReported = this.deliver({ workloadId: workload.id, attempt, state: 'running' });
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      // Another run of this very attempt owns that directory (and may be alive): leave it alone.
      if (e.code === 'EEXIST' && e.path === dir.path) {
        throw new SubmitError(
          `the local backend found a run of this attempt already in ${dir.path}; not starting another`,
        );
      }
      dir.remove();
      throw new SubmitError(`the local backend could not start the run in ${dir.path}: ${e.message}`);
    } finally {
      if (out !== null) closeSync(out);
      if (err !== null) closeSync(err);
    }
    return { ref: dir.name };
  }

  async cancel(target: AttemptRef): Promise<void> {
    const run = this.runs.get(key(target.workloadId, target.attempt));
    if (!run || run.ending) return;
    run.cancelled = true;
    run.dir.markCancelled(); // so a restart still knows the end was asked for
    signalGroup(run.pid, 'SIGTERM');
    run.killTimer ??= setTimeout(() => signalGroup(run.pid, 'SIGKILL'), this.options.killGraceMs);
  }

  /** Copies what the run wrote since the last copy into the log store. */
  async fetchLogs(target: AttemptRef): Promise<void> {
    const run = this.runs.get(key(target.workloadId, target.attempt));
    if (run) await this.copyOutput(run);
  }

  async reconcile(inFlight: InFlightAttempt[]): Promise<ReconcileVerdict[]> {
    const host = this.host;
    if (!host) throw new Error('reconcile() runs after start()');
    const alive = findRunProcesses(this.options.dir);
    const expected = new Set(inFlight.map((a) => key(a.workloadId, a.attempt)));
    // Runs the database no longer expects (finished or cancelled while the service was down, records
    // written but files not yet removed): nothing may keep running unobserved. Runs this process watches
    // are never among them: the caller may ask about a few attempts only (one ambiguous submit, or the
    // attempts of instances that are gone), and the runs it did not name are still ours.
    for (const name of RunDir.list(this.options.dir)) {
      const parsed = RunDir.parseName(name)!;
      const k = key(parsed.workloadId, parsed.attempt);
      if (expected.has(k) || this.runs.has(k)) continue;
      const pid = alive.get(name);
      if (pid) signalGroup(pid, 'SIGKILL');
      new RunDir(this.options.dir, parsed.workloadId, parsed.attempt).remove();
    }
    const verdicts: ReconcileVerdict[] = [];
    for (const a of inFlight) {
      const dir = new RunDir(this.options.dir, a.workloadId, a.attempt);
      const base = { workloadId: a.workloadId, attempt: a.attempt };
      if (this.runs.has(key(a.workloadId, a.attempt))) {
        verdicts.push({ ...base, verdict: 'attached', ref: dir.name }); // watched already: keep its state
        continue;
      }
      if (!dir.exists()) {
        verdicts.push(
          a.state === 'submitting'
            ? { ...base, verdict: 'absent' }
            : { ...base, verdict: 'lost', started: a.state === 'running', message: 'its local run left no trace' },
        );
        continue;
      }
      const pid = alive.get(dir.name);
      const exitCode = dir.exitCode();
      if (pid === undefined && exitCode === null && !dir.wasCancelled()) {
        dir.remove();
        verdicts.push({
          ...base,
          verdict: 'lost',
          started: a.state !== 'submitting',
          message: 'its local run was killed while the service was down, before it could record an exit code',
        });
        continue;
      }
      const run = this.track(dir, a.workloadId, a.attempt, pid ?? 0);
      run.cancelled = dir.wasCancelled();
      for (const stream of LOG_STREAMS) run.offsets[stream] = await host.logLength(a.workloadId, a.attempt, stream);
      if (pid === undefined) void this.finish(run); // ended while the service was away
      verdicts.push({ ...base, verdict: 'attached', ref: dir.name });
    }
    return verdicts;
  }

  async close(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
    // Runs keep going: the next start re-attaches to them. Copy what they wrote so far.
    await Promise.all([...this.runs.values()].map((run) => this.copyOutput(run).catch(() => undefined)));
    for (const run of this.runs.values()) if (run.killTimer) clearTimeout(run.killTimer);
  }

  // ---------------------------------------------------------------- internals

  private track(dir: RunDir, workloadId: string, attempt: number, pid: number): Run {
    const run: Run = {
      dir,
      workloadId,
      attempt,
      pid,
      offsets: { stdout: 0, stderr: 0 },
      cancelled: false,
      ending: false,
      killTimer: null,
      copying: Promise.resolve(),
      startReported: Promise.resolve(),
    };
    this.runs.set(key(workloadId, attempt), run);
    return run;
  }

  private tick(): void {
    for (const run of this.runs.values()) {
      if (run.ending) continue;
      void this.copyOutput(run).catch((error: Error) =>
        this.host?.logger.warn({ err: error.message, workload: run.workloadId }, 'copying local run output failed'),
      );
      // Adopted runs are not our children: no exit event, so look whether the process group is gone.
      if (!isAlive(run.pid)) void this.finish(run);
    }
  }

  /** Copies new bytes of both files; serialized per run so offsets never race. */
  private copyOutput(run: Run): Promise<void> {
    run.copying = run.copying.then(async () => {
      const host = this.host;
      if (!host) return;
      for (const stream of LOG_STREAMS) {
        const file = await open(stream === 'stdout' ? run.dir.stdout : run.dir.stderr, 'r').catch(() => null);
        if (!file) continue;
        try {
          for (;;) {
            const buffer = Buffer.alloc(CHUNK);
            const { bytesRead } = await file.read(buffer, 0, CHUNK, run.offsets[stream]);
            if (bytesRead === 0) break;
            await host.appendLog(
              run.workloadId,
              run.attempt,
              stream,
              run.offsets[stream],
              buffer.subarray(0, bytesRead),
            );
            run.offsets[stream] += bytesRead;
          }
        } finally {
          await file.close();
        }
      }
    });
    return run.copying;
  }

  /** The run ended: report how (the host copies the last output first), then forget it. */
  private async finish(run: Run): Promise<void> {
    // Closed (the service is stopping): the run's files stay for the next start to reconcile.
    if (run.ending || !this.ticker) return;
    run.ending = true;
    if (run.killTimer) clearTimeout(run.killTimer);
    const exitCode = run.dir.exitCode();
    const base = { workloadId: run.workloadId, attempt: run.attempt };
    let update: BackendUpdate;
    if (run.cancelled) {
      update = { ...base, state: 'cancelled', exitCode, message: 'cancelled by request' };
    } else if (exitCode === 0) {
      update = { ...base, state: 'succeeded', exitCode: 0 };
    } else if (exitCode !== null) {
      update = {
        ...base,
        state: 'failed',
        reason: 'task_error',
        started: true,
        exitCode,
        message: exitCode > 128 ? `killed by signal ${exitCode - 128}` : `exited with code ${exitCode}`,
      };
    } else {
      update = {
        ...base,
        state: 'failed',
        reason: 'lost',
        started: true,
        message: 'the supervising shell was killed before it recorded an exit code',
      };
    }
    await run.startReported;
    if (!(await this.deliver(update))) return;
    this.runs.delete(key(run.workloadId, run.attempt));
    run.dir.remove();
  }

  /**
   * Delivers an update, retrying while the database is away; the run's files wait until it lands.
   * False when the backend closed first (the next start reconciles from the files).
   */
  private async deliver(update: BackendUpdate): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      const host = this.host;
      try {
        if (!host) throw new Error('not started');
        await host.update(update);
        return true;
      } catch (error) {
        if (!this.ticker) return false;
        host?.logger.warn(
          { err: (error as Error).message, workload: update.workloadId, state: update.state },
          'could not record a local run update; retrying',
        );
        await new Promise((resolve) => setTimeout(resolve, Math.min(10_000, 200 * 2 ** attempt)));
      }
    }
  }
}

function key(workloadId: string, attempt: number): string {
  return `${workloadId}#${attempt}`;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

function isAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
