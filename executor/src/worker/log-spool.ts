import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { LogStream } from '../store/logs.ts';

/** Bytes of one stream per spool file; files wholly acknowledged by the service are deleted. */
const SEGMENT_BYTES = 8 * 1024 * 1024;
/** Largest upload, bytes (the service takes at most 1 MiB per chunk). */
const UPLOAD_BYTES = 256 * 1024;

/** Uploads one chunk at an offset; returns the stream length the service holds afterwards. */
export type UploadChunk = (stream: LogStream, offset: number, data: Buffer) => Promise<number>;

/** The service refused a chunk because it holds a different length: resume from there. */
export class ResumeFrom extends Error {
  readonly storedLength: number;
  constructor(storedLength: number) {
    super(`resume from ${storedLength}`);
    this.storedLength = storedLength;
  }
}

interface StreamState {
  /** Stream offset just past the last byte spooled. */
  written: number;
  /** Stream offset the service is known to hold up to. */
  acked: number;
  /** Output dropped because the spool was full; a marker is written once there is room again. */
  dropped: number;
  /** Start offsets of the segment files on disk, ascending. */
  segments: number[];
}

/**
 * One attempt's output on its way to the service, spooled on disk first (under the worker's state
 * directory), so that neither an API outage nor a restart of the worker loses a byte: the disk file is the
 * buffer, and uploads resume from the length the service says it holds (store/logs.ts refuses anything
 * else). During a long outage, unacknowledged output is bounded by `maxUnackedBytes` per stream; past that,
 * output is dropped and a marker saying how much is written into the log where it happened — never a silent
 * gap.
 */
export class LogSpool {
  readonly dir: string;
  private readonly maxUnacked: number;
  private readonly streams: Record<LogStream, StreamState>;

  private constructor(dir: string, maxUnackedBytes: number, streams: Record<LogStream, StreamState>) {
    this.dir = dir;
    this.maxUnacked = maxUnackedBytes;
    this.streams = streams;
  }

  /** A new, empty spool for an attempt. */
  static create(dir: string, maxUnackedBytes: number): LogSpool {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const empty = (): StreamState => ({ written: 0, acked: 0, dropped: 0, segments: [] });
    return new LogSpool(dir, maxUnackedBytes, { stdout: empty(), stderr: empty() });
  }

  /**
   * The spool a previous process of this worker left. What the service holds is not known yet: uploads start
   * at the oldest byte on disk and the service's answer moves them to where it stands.
   */
  static recover(dir: string, maxUnackedBytes: number): LogSpool {
    const streams = {} as Record<LogStream, StreamState>;
    for (const stream of ['stdout', 'stderr'] as const) {
      const segments = readdirSync(dir)
        .map((name) => new RegExp(`^${stream}\\.(\\d+)$`).exec(name))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => Number(m[1]))
        .sort((a, b) => a - b);
      const last = segments.at(-1);
      const written = last === undefined ? 0 : last + statSync(join(dir, `${stream}.${last}`)).size;
      streams[stream] = { written, acked: segments[0] ?? 0, dropped: 0, segments };
    }
    return new LogSpool(dir, maxUnackedBytes, streams);
  }

  /** Appends output. Synchronous, so output is on disk in the order it came, before anything else runs. */
  write(stream: LogStream, data: Buffer): void {
    const s = this.streams[stream];
    if (s.written + data.length - s.acked > this.maxUnacked) {
      s.dropped += data.length;
      return;
    }
    if (s.dropped > 0) this.writeMarker(stream);
    this.append(stream, data);
  }

  private writeMarker(stream: LogStream): void {
    const s = this.streams[stream];
    const marker = Buffer.from(
      `\n[airfleet: ${s.dropped} bytes of ${stream} were dropped here: the worker could not reach the service and ` +
        `its spool for this stream was full (${this.maxUnacked} bytes)]\n`,
    );
    s.dropped = 0;
    this.append(stream, marker);
  }

  private append(stream: LogStream, data: Buffer): void {
    const s = this.streams[stream];
    const current = s.segments.at(-1);
    if (current === undefined || s.written - current + data.length > SEGMENT_BYTES) s.segments.push(s.written);
    appendFileSync(join(this.dir, `${stream}.${s.segments.at(-1)}`), data, { mode: 0o600 });
    s.written += data.length;
  }

  /** Whether everything spooled has been acknowledged (and nothing dropped awaits its marker). */
  get drained(): boolean {
    return (['stdout', 'stderr'] as const).every((k) => this.streams[k].acked >= this.streams[k].written);
  }

  get unackedBytes(): number {
    return (['stdout', 'stderr'] as const).reduce((n, k) => n + this.streams[k].written - this.streams[k].acked, 0);
  }

  /** Output is over: a pending drop gets its marker now, even though nothing follows it. */
  seal(): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const s = this.streams[stream];
      if (s.dropped > 0) {
        // Room for the marker itself is made by the bound: it is small, and it must not be lost.
        this.writeMarker(stream);
      }
    }
  }

  /**
   * Uploads what is not acknowledged yet, stream by stream, chunk by chunk, until all is or an upload fails
   * (the error is thrown; call again later). Acknowledged segment files are deleted as it goes.
   */
  async upload(send: UploadChunk): Promise<void> {
    for (const stream of ['stdout', 'stderr'] as const) {
      const s = this.streams[stream];
      while (s.acked < s.written) {
        const data = await this.read(stream, s.acked, UPLOAD_BYTES);
        let length: number;
        try {
          length = await send(stream, s.acked, data);
        } catch (error) {
          if (!(error instanceof ResumeFrom)) throw error;
          length = error.storedLength;
        }
        if (length < (s.segments[0] ?? 0)) {
          // The service holds less than the oldest byte still on disk (it lost data this spool already
          // deleted): nothing here can continue the stream, so stop sending it rather than loop.
          s.acked = s.written;
          break;
        }
        s.acked = Math.min(length, s.written);
        this.dropAcknowledged(stream);
      }
    }
  }

  private async read(stream: LogStream, offset: number, max: number): Promise<Buffer> {
    const s = this.streams[stream];
    let start = s.segments[0] ?? 0;
    for (const seg of s.segments) if (seg <= offset) start = seg;
    const file = await open(join(this.dir, `${stream}.${start}`), 'r');
    try {
      const buffer = Buffer.alloc(max);
      const { bytesRead } = await file.read(buffer, 0, max, offset - start);
      return buffer.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  }

  private dropAcknowledged(stream: LogStream): void {
    const s = this.streams[stream];
    while (s.segments.length > 1 && s.segments[1]! <= s.acked) {
      rmSync(join(this.dir, `${stream}.${s.segments.shift()}`), { force: true });
    }
  }

  /** The attempt is settled: its spool goes. */
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface Leftover {
  dir: string;
  workloadId: string;
  attempt: number;
  /** The final report it recorded, if it got that far. */
  final: unknown;
  /** Whether its task was started (its start confirmed by the service). */
  started: boolean;
}

/** Spool directories a previous process of this worker left, with the final report it recorded (if any). */
export function leftoverSpools(root: string): Leftover[] {
  if (!existsSync(root)) return [];
  const found: Leftover[] = [];
  for (const name of readdirSync(root)) {
    const match = /^([0-9a-f-]{36})\.(\d+)$/.exec(name);
    if (!match) continue;
    const dir = join(root, name);
    let final: unknown = null;
    try {
      final = JSON.parse(readFileSync(join(dir, 'final.json'), 'utf8'));
    } catch {
      // no final report recorded: the task ended with the previous process
    }
    found.push({
      dir,
      workloadId: match[1]!,
      attempt: Number(match[2]),
      final,
      started: existsSync(join(dir, 'started')),
    });
  }
  return found;
}
