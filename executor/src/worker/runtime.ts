import type { FailureReason } from '../domain/states.ts';
import type { Workload } from '../domain/workload.ts';
import type { LogStream } from '../store/logs.ts';

/** How a task ended, as a runtime sees it. */
export interface TaskExit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the runtime knows better than an exit code (e.g. the container was OOM-killed). */
  reason?: FailureReason;
  message?: string;
}

export interface RunningTask {
  /** Resolves once the task has ended. */
  readonly exited: Promise<TaskExit>;
  /** Asks the task to stop: `signal` first, SIGKILL after `graceMs`. */
  stop(signal: NodeJS.Signals, graceMs: number): void;
}

/** The task could not be started at all: reported as a failure before start (maybe retried). */
export class StartError extends Error {
  override name = 'StartError';
  readonly reason: FailureReason;
  readonly exitCode: number | null;
  constructor(reason: FailureReason, message: string, exitCode: number | null = null) {
    super(message);
    this.reason = reason;
    this.exitCode = exitCode;
  }
}

/** A lease as a runtime gets it: the workload and its secret environment (for the task's eyes only). */
export type TaskLease = Workload & { secretEnv: Record<string, string> };

/** Where and how a worker runs a task: a subprocess, or a container per task. */
export interface TaskRuntime {
  readonly name: 'process' | 'docker';
  /**
   * At start-up, before the worker registers: ends whatever a previous process of this worker left running
   * (its attempts are settled by the service when the worker registers again). Returns how many it ended.
   */
  cleanupOrphans(): Promise<number>;
  /**
   * What can fail before the task's own code runs (pulling the image, checking its configuration), done
   * before the worker confirms the start: a StartError here is a failure before start, which the service may
   * retry as a new attempt.
   */
  prepare?(lease: TaskLease): Promise<void>;
  start(lease: TaskLease, onOutput: (stream: LogStream, data: Buffer) => void): Promise<RunningTask>;
}

export function exitCodeOf(
  code: number | null,
  signal: NodeJS.Signals | null,
  signals: Record<string, number>,
): number | null {
  if (code !== null) return code;
  if (signal && signals[signal] !== undefined) return 128 + (signals[signal] as number);
  return null;
}
