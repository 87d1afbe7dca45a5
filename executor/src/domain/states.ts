/**
 * The workload state machine shared by every backend (DESIGN.md, "Workloads and their states").
 *
 *   queued → submitting → pending → running → succeeded | failed | cancelled
 *
 * `submitting` exists for push backends (Nomad, Batch) that call a remote API; the pull-worker pool goes
 * straight from `queued` to `pending` when a worker takes the lease. Any live state may end in `failed` or
 * `cancelled`; `pending`/`submitting` may go back to `queued` for an infrastructure retry (a new attempt).
 */
export const WORKLOAD_STATES = [
  'queued',
  'submitting',
  'pending',
  'running',
  'succeeded',
  'failed',
  'cancelled',
] as const;
export type WorkloadState = (typeof WORKLOAD_STATES)[number];

export const TERMINAL_STATES: readonly WorkloadState[] = ['succeeded', 'failed', 'cancelled'];

/** One taxonomy of failure reasons for all backends. */
export const FAILURE_REASONS = [
  'task_error',
  'unschedulable',
  'image_pull',
  'driver',
  'oom',
  'lost',
  'preempted',
  'submit_error',
  'cancelled',
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

const TRANSITIONS: Record<WorkloadState, readonly WorkloadState[]> = {
  queued: ['submitting', 'pending', 'cancelled', 'failed'],
  submitting: ['pending', 'queued', 'failed', 'cancelled'],
  pending: ['running', 'queued', 'succeeded', 'failed', 'cancelled'],
  running: ['succeeded', 'failed', 'cancelled'],
  succeeded: [],
  failed: [],
  cancelled: [],
};

export function isTerminal(state: WorkloadState): boolean {
  return TERMINAL_STATES.includes(state);
}

export function canTransition(from: WorkloadState, to: WorkloadState): boolean {
  return TRANSITIONS[from].includes(to);
}

/**
 * Failures that happen before the task's own code started may be retried by the service, with a new
 * attempt, without spending one of Airflow's retries. Anything after the start is never re-run here,
 * because the task may have had side effects.
 */
export function isInfraRetryable(reason: FailureReason, started: boolean): boolean {
  if (started) return false;
  return reason === 'unschedulable' || reason === 'image_pull' || reason === 'submit_error' || reason === 'lost';
}

export type RetryDecision = { kind: 'retry'; nextAttempt: number } | { kind: 'fail' };

/** What to do with a failed attempt: requeue it as a new attempt, or fail the workload for good. */
export function decideAfterFailure(input: {
  reason: FailureReason;
  started: boolean;
  attempt: number;
  infraRetries: number;
  maxInfraRetries: number;
}): RetryDecision {
  if (isInfraRetryable(input.reason, input.started) && input.infraRetries < input.maxInfraRetries) {
    return { kind: 'retry', nextAttempt: input.attempt + 1 };
  }
  return { kind: 'fail' };
}
