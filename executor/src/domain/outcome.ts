import { constants } from 'node:os';
import type { FailureReason } from './states.ts';

/**
 * How a task's process ended, as any runner sees it: the local backend's supervising shell, a pull worker's
 * process or container, a Nomad task's `Terminated` event, a Batch job's `attempts[].container`. One mapping
 * to the shared taxonomy for all of them, so an exit code means the same thing wherever the task ran.
 */
export interface ProcessEnd {
  /** The exit code; by shell convention 128 + N when killed by signal N. Null when nobody recorded it. */
  exitCode: number | null;
  /** The signal that killed it, when the runner knows it by name. */
  signal?: string | null;
  /** The kernel's OOM killer ended it (Docker `OOMKilled`, Nomad `oom_killed`, Batch's "OutOfMemoryError"). */
  oomKilled?: boolean;
  /** Extra words from the runner (a status reason), kept in the failure message. */
  detail?: string | null;
}

export type TaskOutcome =
  | { state: 'succeeded'; exitCode: 0 }
  | { state: 'failed'; reason: FailureReason; exitCode: number | null; message: string; started: true };

const SIGNAL_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(constants.signals).map(([name, number]) => [number, name]),
);

/** The outcome of a task that started and ended on its own (not stopped by the service). */
export function outcomeOfExit(end: ProcessEnd): TaskOutcome {
  const detail = end.detail ? `: ${end.detail}` : '';
  if (end.oomKilled) {
    return {
      state: 'failed',
      reason: 'oom',
      exitCode: end.exitCode,
      message: `ran out of memory and was killed (OOM)${detail}`,
      started: true,
    };
  }
  if (end.exitCode === 0 && !end.signal) return { state: 'succeeded', exitCode: 0 };
  if (end.exitCode === null && !end.signal) {
    return {
      state: 'failed',
      reason: 'lost',
      exitCode: null,
      message: `ended without an exit code being recorded${detail}`,
      started: true,
    };
  }
  const signal = end.signal ?? (end.exitCode !== null && end.exitCode > 128 ? SIGNAL_NAMES[end.exitCode - 128] : null);
  const exitCode =
    end.exitCode ??
    (signal && constants.signals[signal as NodeJS.Signals] ? 128 + constants.signals[signal as NodeJS.Signals] : null);
  return {
    state: 'failed',
    reason: 'task_error',
    exitCode,
    message: signal ? `killed by ${signal}${detail}` : `exited with code ${exitCode}${detail}`,
    started: true,
  };
}
