import type { FailureReason } from '../../domain/states.ts';
import type { Allocation, AllocationMetric, Evaluation, TaskEvent, TaskState } from './nomad-types.ts';

/** What an allocation says about its attempt, in the shared taxonomy (docs/nomad-backend.md, "States"). */
export type Observation =
  | { kind: 'waiting' }
  | { kind: 'running' }
  | { kind: 'succeeded'; exitCode: number }
  | { kind: 'cancelled'; exitCode: number | null }
  | { kind: 'failed'; reason: FailureReason; started: boolean; exitCode: number | null; message: string };

/** Driver failures that are the image's: the Docker driver says "Failed to pull `img`: …". */
const IMAGE_PULL = /failed to pull|pull access denied|manifest unknown|no such image|image .* not found/i;

function taskState(alloc: Allocation): TaskState | undefined {
  const states = Object.values(alloc.TaskStates ?? {});
  return states[0];
}

function eventText(e: TaskEvent): string {
  return e.DisplayMessage || e.DriverError || e.Details?.driver_error || e.Message || '';
}

function exitOf(e: TaskEvent | undefined): number | null {
  if (!e) return null;
  const fromDetails = e.Details?.exit_code;
  if (fromDetails !== undefined && fromDetails !== '') return Number(fromDetails);
  return typeof e.ExitCode === 'number' ? e.ExitCode : null;
}

/**
 * Classifies one allocation. `stopRequested`: airfleet asked Nomad to stop the job (a cancel or a timeout),
 * so a killed task is the stop's doing, not a failure.
 */
export function observeAllocation(alloc: Allocation, stopRequested: boolean): Observation {
  const state = taskState(alloc);
  const events = state?.Events ?? [];
  const started = events.some((e) => e.Type === 'Started') || Boolean(state?.StartedAt);
  const terminated = [...events].reverse().find((e) => e.Type === 'Terminated');
  const driverFailure = events.find((e) => e.Type === 'Driver Failure');
  const exitCode = exitOf(terminated);
  const status = alloc.ClientStatus;

  if (status === 'lost') {
    return {
      kind: 'failed',
      reason: 'lost',
      started,
      exitCode: null,
      message: `the allocation ${alloc.ID} was lost${alloc.NodeName ? ` with node ${alloc.NodeName}` : ''}: ${
        alloc.DesiredDescription || alloc.ClientDescription || 'no reason given'
      }`,
    };
  }
  if (driverFailure && !started && (status === 'failed' || status === 'pending' || status === 'complete')) {
    const text = eventText(driverFailure);
    return {
      kind: 'failed',
      reason: IMAGE_PULL.test(text) ? 'image_pull' : 'driver',
      started: false,
      exitCode: null,
      message: `Driver Failure: ${text || 'no message'}`,
    };
  }
  if (status === 'pending' || status === 'unknown') {
    // `unknown`: the node is disconnected and may come back (max_client_disconnect); not an end yet.
    return started && status === 'unknown' ? { kind: 'running' } : { kind: 'waiting' };
  }
  if (status === 'running') return { kind: 'running' };

  // complete or failed: the task ended.
  const stopped = alloc.DesiredStatus === 'stop' || alloc.DesiredStatus === 'evict';
  if (stopRequested && (stopped || events.some((e) => e.Type === 'Killed' || e.Type === 'Killing'))) {
    return { kind: 'cancelled', exitCode };
  }
  if (terminated?.Details?.oom_killed === 'true') {
    return {
      kind: 'failed',
      reason: 'oom',
      started: true,
      exitCode,
      message: `the task was killed for lack of memory (Terminated, oom_killed=true, exit code ${exitCode ?? 'unknown'})`,
    };
  }
  if (status === 'complete' && !state?.Failed && (exitCode === 0 || exitCode === null) && !stopped) {
    return { kind: 'succeeded', exitCode: exitCode ?? 0 };
  }
  if (/preempt/i.test(alloc.DesiredDescription ?? '')) {
    return { kind: 'failed', reason: 'preempted', started, exitCode, message: alloc.DesiredDescription! };
  }
  if (terminated && exitCode !== null && exitCode !== 0) {
    return {
      kind: 'failed',
      reason: 'task_error',
      started: true,
      exitCode,
      message: `the task exited with code ${exitCode}${terminated.Details?.signal && terminated.Details.signal !== '0' ? ` (signal ${terminated.Details.signal})` : ''}`,
    };
  }
  const failing = events.find((e) => e.FailsTask) ?? events.at(-1);
  if (!started) {
    return {
      kind: 'failed',
      reason: 'driver',
      started: false,
      exitCode: null,
      message: `the task never started: ${failing ? `${failing.Type}: ${eventText(failing)}` : alloc.ClientDescription || status}`,
    };
  }
  if (stopped) {
    return {
      kind: 'failed',
      reason: 'lost',
      started,
      exitCode,
      message: `the job was stopped outside airfleet (${alloc.DesiredDescription || 'no description'})`,
    };
  }
  return {
    kind: 'failed',
    reason: 'task_error',
    started,
    exitCode,
    message: failing ? `${failing.Type}: ${eventText(failing)}` : `the allocation ended ${status}`,
  };
}

/** Why an evaluation placed nothing, in Nomad's own words (FailedTGAllocs), for messages and the log. */
export function placementFailure(evaluation: Evaluation): string | null {
  const failed = Object.entries(evaluation.FailedTGAllocs ?? {});
  if (failed.length === 0) return null;
  return failed.map(([group, m]) => `group '${group}': ${describeMetric(m)}`).join('; ');
}

export function describeMetric(m: AllocationMetric): string {
  const parts: string[] = [];
  const map = (name: string, value: Record<string, number> | null | undefined) => {
    const entries = Object.entries(value ?? {});
    if (entries.length > 0) parts.push(`${name} ${entries.map(([k, v]) => `${k}: ${v}`).join(', ')}`);
  };
  parts.push(`${m.NodesEvaluated ?? 0} nodes evaluated`);
  if (m.NodesFiltered) parts.push(`${m.NodesFiltered} filtered`);
  map('ConstraintFiltered', m.ConstraintFiltered);
  map('ClassFiltered', m.ClassFiltered);
  if (m.NodesExhausted) parts.push(`${m.NodesExhausted} exhausted`);
  map('DimensionExhausted', m.DimensionExhausted);
  map('ClassExhausted', m.ClassExhausted);
  if (m.QuotaExhausted && m.QuotaExhausted.length > 0) parts.push(`QuotaExhausted ${m.QuotaExhausted.join(', ')}`);
  if (Object.keys(m.NodesAvailable ?? {}).length > 0) map('NodesAvailable', m.NodesAvailable);
  return parts.join(', ');
}

/** The allocation and its task events as lines for the workload's log, so a user sees what Nomad saw. */
export function describeAllocation(alloc: Allocation): string[] {
  const lines = [
    `allocation ${alloc.ID} on node ${alloc.NodeName ?? alloc.NodeID ?? '?'}: client ${alloc.ClientStatus}${
      alloc.ClientDescription ? ` (${alloc.ClientDescription})` : ''
    }, desired ${alloc.DesiredStatus ?? '?'}${alloc.DesiredDescription ? ` (${alloc.DesiredDescription})` : ''}`,
  ];
  for (const [task, state] of Object.entries(alloc.TaskStates ?? {})) {
    for (const e of state.Events ?? []) {
      const when = e.Time ? new Date(Math.floor(e.Time / 1e6)).toISOString() : '';
      const details = Object.entries(e.Details ?? {})
        .filter(([k]) => ['exit_code', 'signal', 'oom_killed', 'driver_error', 'fails_task'].includes(k))
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      lines.push(
        `  ${when} task ${task}: ${e.Type}${eventText(e) ? ` - ${eventText(e)}` : ''}${details ? ` [${details}]` : ''}`,
      );
    }
  }
  return lines;
}
