import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants } from 'node:os';
import type { Workload } from '../domain/workload.ts';
import type { LogStream } from '../store/logs.ts';
import { exitCodeOf, type RunningTask, StartError, type TaskExit, type TaskRuntime } from './runtime.ts';

/**
 * Runs a task as a subprocess of the worker, in its own process group so that stopping it also stops the
 * children it started. The worker's environment is not inherited beyond PATH and HOME: a task sees only
 * what its workload asks for.
 */
export class ProcessRuntime implements TaskRuntime {
  readonly name = 'process' as const;
  private readonly workDir: string;

  constructor(workDir: string) {
    this.workDir = workDir;
  }

  async start(lease: Workload, onOutput: (stream: LogStream, data: Buffer) => void): Promise<RunningTask> {
    const [program, ...args] = lease.command;
    if (!program) throw new StartError('task_error', 'the command is empty', 127);
    const child = spawn(program, args, {
      cwd: this.workDir,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? '/tmp',
        AIRFLEET_WORKLOAD_ID: lease.id,
        AIRFLEET_ATTEMPT: String(lease.attempt),
        ...lease.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    try {
      await once(child, 'spawn');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new StartError(
        'task_error',
        `cannot start '${program}': ${code === 'ENOENT' ? 'no such program on the worker PATH' : (error as Error).message}`,
        code === 'ENOENT' ? 127 : 126,
      );
    }
    child.stdout.on('data', (d: Buffer) => onOutput('stdout', d));
    child.stderr.on('data', (d: Buffer) => onOutput('stderr', d));
    const exited = new Promise<TaskExit>((resolve) => {
      child.on('close', (code, signal) => {
        resolve({ exitCode: exitCodeOf(code, signal, constants.signals), signal });
      });
    });
    let killTimer: NodeJS.Timeout | null = null;
    void exited.then(() => killTimer && clearTimeout(killTimer));
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
        killGroup(signal);
        if (!killTimer) killTimer = setTimeout(() => killGroup('SIGKILL'), graceMs);
      },
    };
  }
}
