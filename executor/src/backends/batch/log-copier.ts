import type { JobDetail } from '@aws-sdk/client-batch';
import {
  type CloudWatchLogsClient,
  GetLogEventsCommand,
  type GetLogEventsCommandOutput,
} from '@aws-sdk/client-cloudwatch-logs';
import type { BackendHost } from '../backend.ts';
import type { AwsCaller } from './aws-calls.ts';

/** Where a job's output is: the awslogs group of its container (or Batch's default) and its stream. */
export function logLocation(job: JobDetail, defaultGroup: string): { group: string; stream: string | null } {
  const config = job.container?.logConfiguration;
  const group = (config?.logDriver === 'awslogs' && config.options?.['awslogs-group']) || defaultGroup;
  const stream = job.container?.logStreamName ?? job.attempts?.at(-1)?.container?.logStreamName ?? null;
  return { group, stream };
}

/**
 * Copies one attempt's CloudWatch log stream into the log store, page by page with `nextForwardToken`,
 * while the job runs and once more after it ended. The awslogs driver writes stdout and stderr to one
 * stream, so they arrive together as the attempt's stdout, a line per event, in the order CloudWatch
 * keeps them; the backend's own notes (a stream that does not exist) go to its stderr.
 *
 * After a restart the copy starts again from the head of the stream and skips the bytes the store already
 * holds, so nothing is stored twice and nothing is lost.
 */
export class LogCopier {
  private readonly host: BackendHost;
  private readonly logs: CloudWatchLogsClient;
  private readonly caller: AwsCaller;
  private readonly workloadId: string;
  private readonly attempt: number;
  private token: string | undefined;
  /** Bytes of the stream rendered so far (from its head). */
  private rendered = 0;
  /** Bytes the store held when this copier began; everything below is skipped. */
  private stored: number | null = null;
  private noted = false;
  private running: Promise<void> = Promise.resolve();
  group: string | null = null;
  stream: string | null = null;

  constructor(host: BackendHost, logs: CloudWatchLogsClient, caller: AwsCaller, workloadId: string, attempt: number) {
    this.host = host;
    this.logs = logs;
    this.caller = caller;
    this.workloadId = workloadId;
    this.attempt = attempt;
  }

  /** Copies what is new; `final` once the job ended, when a missing stream is worth a note in the log. */
  copy(job: JobDetail, defaultGroup: string, final: boolean, signal?: AbortSignal): Promise<void> {
    const next = this.running.then(() => this.copyNow(job, defaultGroup, final, signal));
    this.running = next.catch(() => undefined);
    return next;
  }

  private async copyNow(job: JobDetail, defaultGroup: string, final: boolean, signal?: AbortSignal): Promise<void> {
    const where = logLocation(job, defaultGroup);
    if (where.stream && where.stream !== this.stream) {
      this.group = where.group;
      this.stream = where.stream;
    }
    if (!this.stream || !this.group) {
      if (final)
        await this.note(
          `airfleet: the Batch job ${job.jobId} ended without a CloudWatch log stream (${job.statusReason ?? 'no reason given'}); no output was kept\n`,
        );
      return;
    }
    this.stored ??= await this.host.logLength(this.workloadId, this.attempt, 'stdout');
    for (let page = 0; page < 1_000; page++) {
      let answer: GetLogEventsCommandOutput;
      try {
        answer = await this.caller.call(
          'GetLogEvents',
          () =>
            this.logs.send(
              new GetLogEventsCommand({
                logGroupName: this.group!,
                logStreamName: this.stream!,
                startFromHead: true,
                ...(this.token ? { nextToken: this.token } : {}),
              }),
              signal ? { abortSignal: signal } : {},
            ),
          signal ? { signal } : {},
        );
      } catch (error) {
        if ((error as Error).name !== 'ResourceNotFoundException') throw error;
        // The stream appears with the job's first output; only after the end is its absence news.
        if (final) {
          await this.note(
            `airfleet: the CloudWatch log stream ${this.group}/${this.stream} of Batch job ${job.jobId} does not exist (${(error as Error).message}); its output could not be copied\n`,
          );
        }
        return;
      }
      const text = (answer.events ?? []).map((e) => `${e.message ?? ''}\n`).join('');
      if (text.length > 0) await this.store(Buffer.from(text));
      // CloudWatch answers the same token again at the end of the stream.
      const next = answer.nextForwardToken;
      if (!next || next === this.token) return;
      this.token = next;
      if ((answer.events ?? []).length === 0) return;
    }
  }

  private async store(data: Buffer): Promise<void> {
    const start = this.rendered;
    this.rendered += data.length;
    const skip = Math.max(0, (this.stored ?? 0) - start);
    if (skip >= data.length) return;
    await this.host.appendLog(this.workloadId, this.attempt, 'stdout', start + skip, data.subarray(skip));
  }

  private async note(message: string): Promise<void> {
    if (this.noted) return;
    this.noted = true;
    const offset = await this.host.logLength(this.workloadId, this.attempt, 'stderr');
    await this.host.appendLog(this.workloadId, this.attempt, 'stderr', offset, Buffer.from(message));
  }
}
