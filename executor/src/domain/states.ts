/**
 * The workload state machine shared by every backend (docs/architecture.md, "One state machine").
 *
 *   queued → submitting → pending → running → succeeded | failed | cancelled
 *
 * `submitting` exists for push backends (local, Nomad, Batch) that call something outside the database; the
 * pull-worker pool goes straight from `queued` to `pending` when a worker takes the lease.
 *
 * {@link TRANSITIONS} is the one list of what may happen to a workload. The store derives the `WHERE state IN
 * (...)` of every UPDATE that changes a state from it (store/transition-sql.ts), so no statement can move a row
 * along an edge this table does not have, and the property test (executor/test/unit/state-machine.test.ts)
 * checks every change recorded in the change feed against it.
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
export const LIVE_STATES = ['queued', 'submitting', 'pending', 'running'] as const;

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

interface Edge {
  readonly from: readonly WorkloadState[];
  readonly to: WorkloadState;
  /** Whether the change starts a new attempt (the old one is over and never ran). */
  readonly newAttempt?: true;
}

/**
 * Every transition, by name. A state change that is not one of these cannot be written.
 *
 * - `retry` starts a new attempt, so it may only leave states in which the old attempt's task has not
 *   started: `submitting` (a submit that failed) and `pending` (placed or leased, but not started). The
 *   service takes it only once the old attempt is known not to run: its backend or worker said so, or the
 *   worker is gone and has fenced itself (docs/architecture.md, "Leases and fencing").
 * - `handBack` is the one other way to a new attempt: the worker holding an attempt says it never started its
 *   task (it is stopping, or the lease came too late to trust). Its word, fenced by attempt and worker, is
 *   the knowledge `retry` waits for; it may leave `running` too, because the service records the start
 *   before the worker starts the task, and a worker whose confirmation was lost (the service stopping as it
 *   answered) never started it.
 * - `release` puts a claim whose submit never went out back in the queue, same attempt, same place.
 * - A task may be seen to end before it was seen to start (a fast task, a lost report): `succeed`, `fail`
 *   and `cancel` may leave `pending` and `submitting` too.
 */
export const TRANSITIONS = {
  claim: { from: ['queued'], to: 'submitting' },
  release: { from: ['submitting'], to: 'queued' },
  submitted: { from: ['submitting'], to: 'pending' },
  lease: { from: ['queued'], to: 'pending' },
  start: { from: ['submitting', 'pending'], to: 'running' },
  succeed: { from: ['submitting', 'pending', 'running'], to: 'succeeded' },
  fail: { from: ['queued', 'submitting', 'pending', 'running'], to: 'failed' },
  cancel: { from: ['queued', 'submitting', 'pending', 'running'], to: 'cancelled' },
  retry: { from: ['submitting', 'pending'], to: 'queued', newAttempt: true },
  handBack: { from: ['pending', 'running'], to: 'queued', newAttempt: true },
} as const satisfies Record<string, Edge>;
export type TransitionName = keyof typeof TRANSITIONS;

export function isTerminal(state: WorkloadState): boolean {
  return TERMINAL_STATES.includes(state);
}

/** Whether some transition leads from `from` to `to` (any attempt). */
export function canTransition(from: WorkloadState, to: WorkloadState): boolean {
  return Object.values(TRANSITIONS).some((t) => t.to === to && (t.from as readonly WorkloadState[]).includes(from));
}

/** The transitions that lead from `from` to `to`: what a recorded change may have been. */
export function transitionsBetween(from: WorkloadState, to: WorkloadState): TransitionName[] {
  return (Object.keys(TRANSITIONS) as TransitionName[]).filter(
    (name) => TRANSITIONS[name].to === to && (TRANSITIONS[name].from as readonly WorkloadState[]).includes(from),
  );
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
  /** A cancel was asked for: never start another attempt. */
  cancelRequested?: boolean;
}): RetryDecision {
  if (
    !input.cancelRequested &&
    isInfraRetryable(input.reason, input.started) &&
    input.infraRetries < input.maxInfraRetries
  ) {
    return { kind: 'retry', nextAttempt: input.attempt + 1 };
  }
  return { kind: 'fail' };
}
