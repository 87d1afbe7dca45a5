import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants } from 'node:os';
import type { LogStream } from '../store/logs.ts';
import {
  exitCodeOf,
  type RunningTask,
  StartError,
  type TaskExit,
  type TaskLease,
  type TaskRuntime,
} from './runtime.ts';

/**
 * The shell each task runs under, in a process group of its own so that stopping it stops the children the
 * task started too. It ties the task's life to the worker's: file descriptor 3 is the read end of a pipe
 * whose other end only the worker holds, and a watchdog in the group waits on it. The worker never writes
 * there, so the read returns only when the worker is gone (even by SIGKILL, when the kernel closes its end):
 * then the whole group gets SIGTERM and, `$1` seconds later, SIGKILL. A task of a dead worker therefore never
 * runs on beside the retry the service starts for it (docs/architecture.md, "Leases and fencing").
 *
 * The shell waits for the task and exits with its code; signals sent to the group reach the task directly
 * (the shell traps them only so that it keeps waiting for the task's own exit code).
 */
export const TASK_SUPERVISOR = `grace="$1"; shift
trap 'got=1' TERM INT HUP
( trap '' TERM INT HUP; read -r _ <&3; kill -TERM 0; sleep "$grace"; kill -KILL 0 ) >/dev/null 2>&1 &
watchdog=$!
"$@" 3<&- &
task=$!
while :; do
  wait "$task"; code=$?
  kill -0 "$task" 2>/dev/null || break
done
kill -KILL "$watchdog" 2>/dev/null
exit "$code"`;

/** $0 of every task supervisor, so that a process listing tells what it is. */
export const TASK_SUPERVISOR_MARK = 'airfleet-task';

/**
 * Runs a task as a subprocess of the worker (see TASK_SUPERVISOR). The worker's environment is not inherited
 * beyond PATH and HOME: a task sees only what its workload asks for, its secret environment included (which
 * no process listing shows, unlike arguments).
 */
export class ProcessRuntime implements TaskRuntime {
  readonly name = 'process' as const;
  private readonly workDir: string;
  private readonly orphanGraceSeconds: number;

  constructor(workDir: string, options: { orphanGraceSeconds?: number } = {}) {
    this.workDir = workDir;
    this.orphanGraceSeconds = options.orphanGraceSeconds ?? 5;
  }

  /** Tasks of a previous process of this worker died with it (the lifeline): nothing to clean up. */
  async cleanupOrphans(): Promise<number> {
    return 0;
  }

  async start(lease: TaskLease, onOutput: (stream: LogStream, data: Buffer) => void): Promise<RunningTask> {
    const [program] = lease.command;
    if (!program) throw new StartError('task_error', 'the command is empty', 127);
    const child = spawn(
      '/bin/sh',
      ['-c', TASK_SUPERVISOR, TASK_SUPERVISOR_MARK, String(this.orphanGraceSeconds), ...lease.command],
      {
        cwd: this.workDir,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: process.env.HOME ?? '/tmp',
          AIRFLEET_WORKLOAD_ID: lease.id,
          AIRFLEET_ATTEMPT: String(lease.attempt),
          ...lease.env,
          ...lease.secretEnv,
        },
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
        detached: true,
      },
    );
    try {
      await once(child, 'spawn');
    } catch (error) {
      throw new StartError('driver', `cannot start the task's shell: ${(error as Error).message}`);
    }
    // The lifeline: held open, never written to (see TASK_SUPERVISOR).
    const lifeline = child.stdio[3];
    child.stdout!.on('data', (d: Buffer) => onOutput('stdout', d));
    child.stderr!.on('data', (d: Buffer) => onOutput('stderr', d));
    const exited = new Promise<TaskExit>((resolve) => {
      child.on('close', (code, signal) => {
        lifeline?.destroy();
        // The shell exits 127 when the program is not found, as a shell would.
        resolve({ exitCode: exitCodeOf(code, signal, constants.signals), signal });
      });
    });
    let killTimer: NodeJS.Timeout | null = null;
    let over = false;
    void exited.then(() => {
      over = true;
      if (killTimer) clearTimeout(killTimer);
    });
    const killGroup = (signal: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // already gone
      }
    };
    return {
      exited,
      stop(signal, graceMs) {
        // A stop of a task that has ended (a shutdown while its delivery is under way) has nothing to kill,
        // and a SIGKILL timer armed now would hold the worker's process open for the grace.
        if (over) return;
        killGroup(signal);
        if (!killTimer) killTimer = setTimeout(() => killGroup('SIGKILL'), graceMs);
      },
    };
  }
}
