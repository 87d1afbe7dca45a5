import type { JobDetail } from '@aws-sdk/client-batch';
import type { FailureReason } from '../../domain/states.ts';
import { STOP_REASONS } from './job-spec.ts';

/**
 * What one DescribeJobs entry says about an attempt, in the shared states:
 * SUBMITTED, PENDING, RUNNABLE, STARTING → still waiting; RUNNING → running; SUCCEEDED / FAILED → ended,
 * with the reason from the failure taxonomy and the exit code of the last attempt's container.
 */
export type JobObservation =
  | { kind: 'waiting'; status: 'SUBMITTED' | 'PENDING' | 'RUNNABLE' | 'STARTING'; statusReason: string | null }
  | { kind: 'running' }
  | { kind: 'succeeded'; exitCode: number }
  | { kind: 'cancelled'; exitCode: number | null; message: string }
  | {
      kind: 'failed';
      reason: FailureReason;
      started: boolean;
      exitCode: number | null;
      message: string;
    };

/**
 * Batch's words for a host that went away under a job (Spot reclaim, instance retired or scaled in, ECS
 * agent lost), in the job's or its attempt's status reason or the container's reason. These are the cases
 * the stacks' job definition used to retry inside Batch (`Host EC2*`); now the service decides.
 */
const HOST_FAILURE =
  /^Host EC2|\binstance i-[0-9a-f]+\b.*\bterminated|CannotInspectContainerError|ECS agent|Task failed to start|ResourceInitializationError|capacity.*reclaim|Spot/i;
const IMAGE_PULL = /CannotPullContainerError|pull (?:access denied|image)|manifest .*not found|ImagePull/i;
const OUT_OF_MEMORY = /OutOfMemory|OOM|killed due to memory/i;
const UNSCHEDULABLE = /^(?:MISCONFIGURATION|CAPACITY):/;
const TIMED_OUT = /attempt duration exceeded|timeout/i;

/** Whether the task's container started: Batch records `startedAt` when the job reaches RUNNING. */
export function jobStarted(job: JobDetail): boolean {
  return (
    job.status === 'RUNNING' ||
    job.status === 'SUCCEEDED' ||
    (job.startedAt ?? 0) > 0 ||
    (job.attempts ?? []).some((a) => (a.startedAt ?? 0) > 0)
  );
}

export function exitCodeOf(job: JobDetail): number | null {
  const last = job.attempts?.at(-1);
  return job.container?.exitCode ?? last?.container?.exitCode ?? null;
}

/** Every reason Batch gave, most specific first: the container's, the attempt's, the job's. */
function reasonsOf(job: JobDetail): string[] {
  const last = job.attempts?.at(-1);
  return [last?.container?.reason, job.container?.reason, last?.statusReason, job.statusReason].filter(
    (r): r is string => typeof r === 'string' && r.length > 0,
  );
}

export function observe(job: JobDetail, cancelRequested = false): JobObservation {
  switch (job.status) {
    case 'SUBMITTED':
    case 'PENDING':
    case 'RUNNABLE':
    case 'STARTING':
      return { kind: 'waiting', status: job.status, statusReason: job.statusReason ?? null };
    case 'RUNNING':
      return { kind: 'running' };
    case 'SUCCEEDED':
      return { kind: 'succeeded', exitCode: exitCodeOf(job) ?? 0 };
    default:
      return failure(job, cancelRequested);
  }
}

function failure(job: JobDetail, cancelRequested: boolean): JobObservation {
  const exitCode = exitCodeOf(job);
  const started = jobStarted(job);
  const reasons = reasonsOf(job);
  const said = reasons.length > 0 ? reasons.join('; ') : 'no reason given';
  const statusReason = job.statusReason ?? '';
  if (cancelRequested || statusReason.startsWith(STOP_REASONS.cancelled)) {
    return { kind: 'cancelled', exitCode, message: `the Batch job was stopped: ${said}` };
  }
  if (statusReason.startsWith(STOP_REASONS.unschedulable)) {
    return { kind: 'failed', reason: 'unschedulable', started: false, exitCode: null, message: statusReason };
  }
  const any = (pattern: RegExp) => reasons.some((r) => pattern.test(r));
  if (!started && any(IMAGE_PULL)) {
    return {
      kind: 'failed',
      reason: 'image_pull',
      started: false,
      exitCode: null,
      message: `the image could not be pulled: ${said}`,
    };
  }
  if (!started && any(UNSCHEDULABLE)) {
    return {
      kind: 'failed',
      reason: 'unschedulable',
      started: false,
      exitCode: null,
      message: `Batch could not place the job: ${said}`,
    };
  }
  if (any(OUT_OF_MEMORY)) {
    return {
      kind: 'failed',
      reason: 'oom',
      started: true,
      exitCode,
      message: `the container ran out of memory: ${said}`,
    };
  }
  if (any(HOST_FAILURE)) {
    return {
      kind: 'failed',
      reason: 'lost',
      started,
      exitCode,
      message: `${started ? 'the host went away while the task ran' : 'the host went away before the task started'}: ${said}`,
    };
  }
  if (exitCode !== null) {
    return {
      kind: 'failed',
      reason: 'task_error',
      started: true,
      exitCode,
      message: exitCode > 128 ? `killed by signal ${exitCode - 128} (${said})` : `exited with code ${exitCode}`,
    };
  }
  if (!started) {
    return {
      kind: 'failed',
      reason: 'lost',
      started: false,
      exitCode: null,
      message: `the job failed before it started: ${said}`,
    };
  }
  return {
    kind: 'failed',
    reason: 'task_error',
    started: true,
    exitCode: null,
    message: any(TIMED_OUT) ? `the job timed out: ${said}` : `the job failed and Batch gave no exit code: ${said}`,
  };
}
