import type { PoolConfig } from './pool-config.ts';

/** What the decision reads: the pool's backlog and capacity now, and when it last changed. */
export interface DecisionInput {
  /** Pool slots of the pool's queued workloads. */
  queuedSlots: number;
  /** Pool slots of its leased and running workloads. */
  runningSlots: number;
  /** The capacity the platform is asked to keep (service replicas, group count). */
  current: number;
  /** Workers chosen for a scale-in that is still draining (they count in `current` until removed). */
  scalingIn: number;
  nowMs: number;
  lastScaleOutMs: number | null;
  lastScaleInMs: number | null;
}

export type DecisionAction = 'hold' | 'scale_out' | 'scale_in';

export interface Decision {
  action: DecisionAction;
  /** The capacity to go to (equal to `current` on hold). */
  target: number;
  /** ceil((queued + running slots) / slots per worker), clamped to the bounds. */
  desired: number;
  /** Stop a scale-in under way and put its workers back to work: the backlog needs them. */
  cancelScaleIn: boolean;
  reason: string;
}

type Bounds = Pick<
  PoolConfig,
  | 'slotsPerWorker'
  | 'minWorkers'
  | 'maxWorkers'
  | 'scaleOutCooldownSeconds'
  | 'scaleInCooldownSeconds'
  | 'hysteresisSlots'
>;

const clamp = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, n));

/**
 * The autoscaler's decision for one pool, a pure function (tested over recorded backlog series in
 * executor/test/unit/autoscaler-decide.test.ts).
 *
 * - desired = ceil((slots queued + slots running) / slots per worker), clamped to [min, max]. Running slots
 *   count, so a pool never shrinks under its own running tasks.
 * - Scale-out to `desired` as soon as it exceeds the capacity, at most once per scale-out cooldown.
 * - Scale-in only when the backlog fits the smaller size with `hysteresisSlots` to spare (or is empty), no
 *   sooner than the scale-in cooldown after any change, and one scale-in at a time: its workers must drain
 *   and be removed first. A backlog that comes back meanwhile cancels it.
 * - Bounds win over cooldowns: below the minimum grows at once, above the maximum shrinks once nothing else
 *   is draining.
 */
export function decide(pool: Bounds, input: DecisionInput): Decision {
  const backlog = Math.max(0, input.queuedSlots) + Math.max(0, input.runningSlots);
  const spw = pool.slotsPerWorker;
  const desired = clamp(Math.ceil(backlog / spw), pool.minWorkers, pool.maxWorkers);
  const { current, nowMs } = input;
  const act = (action: DecisionAction, target: number, reason: string, cancelScaleIn = false): Decision => ({
    action,
    target,
    desired,
    cancelScaleIn,
    reason,
  });
  const hold = (reason: string, cancelScaleIn = false) => act('hold', current, reason, cancelScaleIn);
  // Growing keeps every worker: a scale-in under way is called off.
  const grow = (reason: string) => act('scale_out', desired, reason, input.scalingIn > 0);
  const since = (at: number | null) => (at === null ? Number.POSITIVE_INFINITY : (nowMs - at) / 1000);

  if (current < pool.minWorkers) {
    return grow('below the minimum');
  }
  if (desired > current - input.scalingIn && input.scalingIn > 0) {
    // The workers being drained are wanted again: keep them (they go back to work), whatever the cooldown.
    if (desired <= current) return hold('backlog came back: the scale-in under way is cancelled', true);
  }
  if (desired > current) {
    const wait = pool.scaleOutCooldownSeconds - since(input.lastScaleOutMs);
    if (wait > 0) return hold(`scale-out cooldown: ${Math.ceil(wait)} s left`, input.scalingIn > 0);
    return grow('backlog above capacity');
  }
  if (input.scalingIn > 0) return hold('a scale-in is draining');
  if (current > pool.maxWorkers) {
    return act('scale_in', pool.maxWorkers, 'above the maximum');
  }
  // Hysteresis: the smaller size must serve the backlog with slots to spare, unless there is no backlog.
  const fits =
    backlog === 0
      ? pool.minWorkers
      : clamp(Math.ceil((backlog + pool.hysteresisSlots) / spw), pool.minWorkers, pool.maxWorkers);
  if (fits < current) {
    const last = Math.max(
      input.lastScaleOutMs ?? Number.NEGATIVE_INFINITY,
      input.lastScaleInMs ?? Number.NEGATIVE_INFINITY,
    );
    const wait = pool.scaleInCooldownSeconds - since(Number.isFinite(last) ? last : null);
    if (wait > 0) return hold(`scale-in cooldown: ${Math.ceil(wait)} s left`);
    return act('scale_in', fits, 'capacity above backlog');
  }
  if (desired < current) return hold(`within hysteresis (${pool.hysteresisSlots} slots)`);
  return hold('at desired capacity');
}
