import { appendFileSync, existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';

/**
 * THE NOMAD FAKE's task log files, as Nomad's logmon writes them: `alloc/logs/<task>.<stdout|stderr>.<n>`,
 * a new file when the current one reaches `MaxFileSizeMB`, the oldest deleted beyond `MaxFiles`.
 */
export class RotatingLog extends Writable {
  private readonly dir: string;
  private readonly base: string;
  private readonly maxBytes: number;
  private readonly maxFiles: number;
  private index = 0;
  private size = 0;

  constructor(dir: string, task: string, stream: 'stdout' | 'stderr', maxBytes: number, maxFiles: number) {
    super();
    this.dir = dir;
    this.base = `${task}.${stream}`;
    this.maxBytes = maxBytes;
    this.maxFiles = maxFiles;
    appendFileSync(this.path(0), '');
  }

  private path(n: number): string {
    return join(this.dir, `${this.base}.${n}`);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      let rest = chunk;
      while (rest.length > 0) {
        if (this.size >= this.maxBytes) {
          this.index += 1;
          this.size = 0;
          appendFileSync(this.path(this.index), '');
          const old = this.index - this.maxFiles;
          if (old >= 0 && existsSync(this.path(old))) rmSync(this.path(old));
        }
        const take = rest.subarray(0, this.maxBytes - this.size);
        appendFileSync(this.path(this.index), take);
        this.size += take.length;
        rest = rest.subarray(take.length);
      }
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }
}

/** `fs/ls` entries (Nomad's AllocFileInfo). */
export function listDir(
  dir: string,
): Array<{ Name: string; IsDir: boolean; Size: number; FileMode: string; ModTime: string }> {
  return readdirSync(dir).map((name) => {
    const s = statSync(join(dir, name));
    return {
      Name: name,
      IsDir: s.isDirectory(),
      Size: s.size,
      FileMode: s.isDirectory() ? 'drwxr-xr-x' : '-rw-r--r--',
      ModTime: s.mtime.toISOString(),
    };
  });
}
