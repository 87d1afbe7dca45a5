import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface WorkerIdentity {
  workerId: string;
  token: string;
}

/**
 * A worker's own directory (`--state-dir`), the owner's alone (0700, files 0600): its identity, so that a
 * restart takes its name back and keeps its id; and `spool/`, one folder per attempt with its output and, once
 * it ended, its final report (worker/log-spool.ts). Everything here must survive a restart of the worker.
 */
export class StateDir {
  readonly path: string;
  readonly spoolDir: string;

  constructor(path: string) {
    this.path = path;
    this.spoolDir = join(path, 'spool');
    mkdirSync(this.spoolDir, { recursive: true, mode: 0o700 });
    chmodSync(path, 0o700);
  }

  readIdentity(): WorkerIdentity | null {
    try {
      const value = JSON.parse(readFileSync(join(this.path, 'identity.json'), 'utf8')) as WorkerIdentity;
      return typeof value.token === 'string' && typeof value.workerId === 'string' ? value : null;
    } catch {
      return null;
    }
  }

  writeIdentity(identity: WorkerIdentity): void {
    atomicWrite(join(this.path, 'identity.json'), JSON.stringify(identity));
  }

  /** Records that an attempt's task is about to start (its start was confirmed): from here it may have run. */
  markStarted(spoolDir: string): void {
    atomicWrite(join(spoolDir, 'started'), '');
  }

  /** Records an attempt's final report in its spool folder before it is sent. */
  writeFinal(spoolDir: string, report: unknown): void {
    atomicWrite(join(spoolDir, 'final.json'), JSON.stringify(report));
  }
}

/** Written whole or not at all: a crash mid-write leaves the previous file, never half of one. */
function atomicWrite(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}
