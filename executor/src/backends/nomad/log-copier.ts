import type { LogStream } from '../../store/logs.ts';
import { type BackendHost, LogOffsetError } from '../backend.ts';
import type { NomadClient } from './nomad-client.ts';

interface FileInfo {
  Name: string;
  IsDir?: boolean;
  Size: number;
}

/** Largest read per request: a log file is at most `logMaxFileSizeMb`, usually much less. */
const READ_LIMIT = 8 * 1024 * 1024;

/**
 * Copies one allocation's task logs into the log store: stdout and stderr apart, every rotated file
 * (`alloc/logs/<task>.stdout.0`, `.1`, …; the seed read `.0` only). One `fs/ls` of the log directory,
 * then `fs/readat` of the bytes not stored yet, file by file: a stream is the concatenation of its files in
 * index order, so a stored length maps to a file and an offset in it.
 *
 * Nomad deletes the oldest files beyond the job's `logs.max_files`; copying while the task runs keeps up
 * with that. Files deleted before they were copied leave a gap, which goes into the attempt's stderr as a note.
 */
export class NomadLogCopier {
  private readonly host: BackendHost;
  private readonly client: NomadClient;
  private readonly workloadId: string;
  private readonly attempt: number;
  /** Where each file begins in its stream (known once seen, kept when Nomad deletes it). */
  private readonly starts: Record<LogStream, Map<number, number>> = { stdout: new Map(), stderr: new Map() };
  private readonly stored: Partial<Record<LogStream, number>> = {};
  private running: Promise<void> = Promise.resolve();
  private gapNoted = false;

  constructor(host: BackendHost, client: NomadClient, workloadId: string, attempt: number) {
    this.host = host;
    this.client = client;
    this.workloadId = workloadId;
    this.attempt = attempt;
  }

  /** Copies what is new (serialised: a running copy and the final one never interleave). */
  copy(allocId: string, task: string, signal?: AbortSignal): Promise<void> {
    const next = this.running.then(() => this.copyNow(allocId, task, signal));
    this.running = next.catch(() => undefined);
    return next;
  }

  private async copyNow(allocId: string, task: string, signal?: AbortSignal): Promise<void> {
    const answer = await this.client.request<FileInfo[] | null>('GET', `/v1/client/fs/ls/${allocId}`, {
      query: { path: '/alloc/logs' },
      ...(signal ? { signal } : {}),
    });
    const files = answer.data ?? [];
    for (const stream of ['stdout', 'stderr'] as const) {
      const prefix = `${task}.${stream}.`;
      const mine = files
        .filter((f) => !f.IsDir && f.Name.startsWith(prefix) && /^\d+$/.test(f.Name.slice(prefix.length)))
        .map((f) => ({ index: Number(f.Name.slice(prefix.length)), size: f.Size, name: f.Name }))
        .sort((a, b) => a.index - b.index);
      if (mine.length === 0) continue;
      this.stored[stream] ??= await this.host.logLength(this.workloadId, this.attempt, stream);
      let stored = this.stored[stream];
      const starts = this.starts[stream];
      if (mine[0]!.index === 0) starts.set(0, 0);
      for (let i = 0; i < mine.length; i++) {
        const f = mine[i]!;
        let start = starts.get(f.index);
        if (start === undefined) {
          // Earlier files were deleted before this copier saw them: what was stored is all we have of them.
          start = stored;
          starts.set(f.index, start);
          if (f.index > 0 && stored === 0) await this.noteGap(stream, f.index);
        }
        const next = mine[i + 1];
        if (next && !starts.has(next.index)) starts.set(next.index, start + f.size);
        if (start + f.size <= stored) continue;
        let offset = Math.max(0, stored - start);
        while (offset < f.size) {
          const limit = Math.min(READ_LIMIT, f.size - offset);
          const data = await this.client.bytes(`/v1/client/fs/readat/${allocId}`, {
            query: { path: `/alloc/logs/${f.name}`, offset, limit },
            ...(signal ? { signal } : {}),
          });
          if (data.length === 0) break;
          try {
            stored = await this.host.appendLog(this.workloadId, this.attempt, stream, start + offset, data);
          } catch (error) {
            if (!(error instanceof LogOffsetError)) throw error;
            stored = error.storedLength;
          }
          this.stored[stream] = stored;
          offset = stored - start;
        }
      }
    }
  }

  private async noteGap(stream: LogStream, firstIndex: number): Promise<void> {
    if (this.gapNoted) return;
    this.gapNoted = true;
    this.host.logger.warn(
      { workload: this.workloadId, attempt: this.attempt, stream, firstIndex },
      'Nomad rotated task log files away before they were copied',
    );
  }

  /** Appends airfleet's own lines (the Nomad context of an end) to the attempt's stderr, after its output. */
  async note(lines: string[]): Promise<void> {
    await this.running;
    const text = Buffer.from(lines.map((l) => `airfleet: ${l}\n`).join(''));
    for (let tries = 0; tries < 3; tries++) {
      const offset = await this.host.logLength(this.workloadId, this.attempt, 'stderr');
      try {
        this.stored.stderr = await this.host.appendLog(this.workloadId, this.attempt, 'stderr', offset, text);
        return;
      } catch (error) {
        if (!(error instanceof LogOffsetError)) throw error;
      }
    }
  }
}
