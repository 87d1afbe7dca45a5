import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The files of one local run, `<root>/<workloadId>.<attempt>/`: the task's `stdout` and `stderr`, its
 * `exit` code (written by the supervising shell, so it survives a crash of the service), a `cancelled`
 * marker, and `work/`, the task's working directory. Everything the service must know after a restart is
 * on disk here, not in memory.
 */
export class RunDir {
  readonly path: string;
  readonly name: string;

  constructor(root: string, workloadId: string, attempt: number) {
    this.name = `${workloadId}.${attempt}`;
    this.path = join(root, this.name);
  }

  static parseName(name: string): { workloadId: string; attempt: number } | null {
    const match = /^([0-9a-f-]{36})\.(\d+)$/.exec(name);
    return match ? { workloadId: match[1]!, attempt: Number(match[2]) } : null;
  }

  /** Every run directory under `root` (left by runs that were never cleaned up, e.g. after a crash). */
  static list(root: string): string[] {
    if (!existsSync(root)) return [];
    return readdirSync(root).filter((name) => RunDir.parseName(name) !== null);
  }

  get stdout(): string {
    return join(this.path, 'stdout');
  }
  get stderr(): string {
    return join(this.path, 'stderr');
  }
  get exitFile(): string {
    return join(this.path, 'exit');
  }
  get workDir(): string {
    return join(this.path, 'work');
  }

  exists(): boolean {
    return existsSync(this.path);
  }

  /**
   * Makes the directory and opens its two output files for appending (created empty), for the task's
   * stdout and stderr. The root must exist (LocalBackend makes it once): plain mkdir calls here, because a
   * recursive mkdir costs a millisecond or more per run, on the path of every task's start.
   */
  create(): { out: number; err: number } {
    mkdirSync(this.path, { mode: 0o700 });
    mkdirSync(this.workDir);
    const out = openSync(this.stdout, 'a', 0o600);
    try {
      return { out, err: openSync(this.stderr, 'a', 0o600) };
    } catch (error) {
      closeSync(out);
      throw error;
    }
  }

  /** The exit code the supervising shell recorded, or null if it never got to (killed, or still running). */
  exitCode(): number | null {
    try {
      const text = readFileSync(this.exitFile, 'utf8').trim();
      return /^\d+$/.test(text) ? Number(text) : null;
    } catch {
      return null;
    }
  }

  markCancelled(): void {
    writeFileSync(join(this.path, 'cancelled'), '');
  }

  wasCancelled(): boolean {
    return existsSync(join(this.path, 'cancelled'));
  }

  remove(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}

/**
 * Finds the supervising shell of each run still alive, by its command line (which names the run's exit
 * file). Used after a restart, when the service is no longer the parent of what it started. Linux /proc.
 */
export function findRunProcesses(root: string): Map<string, number> {
  const found = new Map<string, number>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return found;
  }
  const prefix = `${root}/`;
  for (const pid of pids) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    // argv: sh -c <script> <mark> <exit file> <task argv...>
    if (argv[3] !== SUPERVISOR_MARK) continue;
    const exitFile = argv[4];
    if (!exitFile?.startsWith(prefix)) continue;
    const name = exitFile.slice(prefix.length).split('/')[0]!;
    found.set(name, Number(pid));
  }
  return found;
}

/** $0 of every supervising shell, so /proc scans recognise ours. */
export const SUPERVISOR_MARK = 'airfleet-local-run';

/**
 * The supervising shell: runs the task, then records its exit code in a file. The shell outlives a crashed
 * service, so the code still lands. The file is read only once the shell is gone (its exit event, or its
 * pid no longer alive), when the write is complete; a shell killed mid-write leaves no number, read as "no
 * exit code" like one killed before it. So no temporary file and rename: that `mv` was one more process
 * per task.
 */
export const SUPERVISOR_SCRIPT = `exit_file="$1"; shift; "$@"; code=$?; printf '%s\\n' "$code" > "$exit_file"; exit "$code"`;
