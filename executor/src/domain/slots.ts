/**
 * Slot accounting for pull workers, the Edge executor's `pool_slots` model: a worker with concurrency N runs
 * tasks whose pool slots add up to at most N.
 */
export interface LeaseCandidate {
  id: string;
  poolSlots: number;
  priorityWeight: number;
  /** Milliseconds since epoch the workload entered the queue (for this attempt). */
  queuedAt: number;
}

/** Higher `priorityWeight` first, then older first, then by id so the order is total and stable. */
export function compareForLease(a: LeaseCandidate, b: LeaseCandidate): number {
  return b.priorityWeight - a.priorityWeight || a.queuedAt - b.queuedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * Chooses which candidates a worker with `freeSlots` free takes, in lease order. A candidate too big for the
 * remaining slots is passed over so smaller ones behind it can still run (it stays queued for a worker with
 * room); the order among those chosen is the lease order.
 */
export function pickLeases<T extends LeaseCandidate>(candidates: readonly T[], freeSlots: number, max = Infinity): T[] {
  const chosen: T[] = [];
  let remaining = freeSlots;
  for (const candidate of [...candidates].sort(compareForLease)) {
    if (remaining <= 0 || chosen.length >= max) break;
    if (candidate.poolSlots <= remaining) {
      chosen.push(candidate);
      remaining -= candidate.poolSlots;
    }
  }
  return chosen;
}

/** Free slots of a worker: its concurrency less the slots of what it runs; never negative. */
export function freeSlots(concurrency: number, runningSlots: readonly number[]): number {
  return Math.max(0, concurrency - runningSlots.reduce((sum, s) => sum + s, 0));
}
