import type { ApiClient } from '../client/api-client.ts';
import { ApiError } from '../client/api-client.ts';
import type { LogStream } from '../store/logs.ts';

const MAX_CHUNK = 256 * 1024;

/**
 * Ships one attempt's stdout and stderr to the service in chunks with byte offsets. Output is buffered in
 * memory and sent at most every `intervalMs`; a failed upload is retried with the same offset, which the
 * service stores once however often it arrives. `close()` resolves when everything has been acknowledged.
 */
export class LogShipper {
  private readonly pending: Record<LogStream, Buffer[]> = { stdout: [], stderr: [] };
  private readonly offsets: Record<LogStream, number> = { stdout: 0, stderr: 0 };
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private dropped = false;
  private readonly client: ApiClient;
  private readonly workloadId: string;
  private readonly attempt: number;
  private readonly intervalMs: number;
  private readonly onError: (error: Error) => void;

  constructor(options: {
    client: ApiClient;
    workloadId: string;
    attempt: number;
    intervalMs: number;
    onError: (error: Error) => void;
  }) {
    this.client = options.client;
    this.workloadId = options.workloadId;
    this.attempt = options.attempt;
    this.intervalMs = options.intervalMs;
    this.onError = options.onError;
  }

  write(stream: LogStream, data: Buffer): void {
    if (this.dropped) return;
    this.pending[stream].push(data);
    if (!this.timer) this.timer = setTimeout(() => void this.flush(), this.intervalMs);
  }

  /** Sends what is buffered; concurrent calls share one flush so offsets stay in order. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (!this.flushing) {
      this.flushing = this.send().finally(() => {
        this.flushing = null;
      });
    }
    return this.flushing;
  }

  private async send(): Promise<void> {
    for (const stream of ['stdout', 'stderr'] as const) {
      while (this.pending[stream].length > 0 && !this.dropped) {
        const all = Buffer.concat(this.pending[stream]);
        const chunk = all.subarray(0, MAX_CHUNK);
        try {
          await this.client.request('POST', '/v1/worker/logs', {
            body: {
              workloadId: this.workloadId,
              attempt: this.attempt,
              stream,
              offset: this.offsets[stream],
              data: chunk.toString('base64'),
            },
            retry: { retryForMs: 24 * 3600_000, maxDelayMs: 5_000 },
          });
        } catch (error) {
          if (error instanceof ApiError && (error.status === 409 || error.status === 404)) {
            // The attempt is no longer ours (fenced): nothing more to ship.
            this.dropped = true;
            this.pending.stdout = [];
            this.pending.stderr = [];
            return;
          }
          this.onError(error as Error);
          return;
        }
        this.offsets[stream] += chunk.length;
        const rest = all.subarray(chunk.length);
        this.pending[stream] = rest.length > 0 ? [rest] : [];
      }
    }
  }

  /** Flushes until nothing is left (or the attempt was fenced off). */
  async close(): Promise<void> {
    while (!this.dropped && (this.pending.stdout.length > 0 || this.pending.stderr.length > 0 || this.flushing)) {
      await this.flush();
    }
  }
}
