import type { Queryable } from './db.ts';

/**
 * What the leader's autoscaler last saw and decided for a pool, shared with every instance (any of them
 * answers GET /v1/pools and exports the pool gauges). Kept in `backend_cursors` under the name `autoscaler`:
 * one small row per pool, written by the leader alone, which is the shape that table already has.
 */
export interface PoolStatus {
  pool: string;
  queuedSlots: number;
  runningSlots: number;
  desired: number;
  /** The capacity the platform is asked to keep. */
  target: number;
  /** Workers the platform reports running. */
  running: number;
  /** Workers of the pool registered with the service and live. */
  workers: number;
  /** Workers chosen for a scale-in, draining or drained and about to be removed. */
  scalingIn: string[];
  lastDecision: { at: string; action: string; target: number; reason: string };
  lastScaleOutAt: string | null;
  lastScaleInAt: string | null;
  /** The last driver error, cleared by the next pass that works. */
  error: string | null;
  /** Desired and actual workers over the last hour (the dashboard's chart), oldest first; see history(). */
  history?: PoolSample[];
}

export interface PoolSample {
  at: string;
  desired: number;
  actual: number;
}

/** Samples kept: one hour, at most one per half minute unless a figure changed (at most 240 in all). */
const HISTORY_MS = 3_600_000;
const SAMPLE_EVERY_MS = 30_000;
const HISTORY_MAX = 240;

/**
 * The pool's history with this pass's figures: appended when desired or actual changed or half a minute
 * passed since the last sample, trimmed to the last hour. Bounded, so the status row stays small.
 */
export function withSample(history: readonly PoolSample[], sample: PoolSample): PoolSample[] {
  const at = Date.parse(sample.at);
  const last = history.at(-1);
  const changed = !last || last.desired !== sample.desired || last.actual !== sample.actual;
  const next = changed || at - Date.parse(last.at) >= SAMPLE_EVERY_MS ? [...history, sample] : [...history];
  return next.filter((h) => at - Date.parse(h.at) <= HISTORY_MS).slice(-HISTORY_MAX);
}

const KIND = 'autoscaler';

export async function writePoolStatus(q: Queryable, status: PoolStatus): Promise<void> {
  await q.query(
    `INSERT INTO backend_cursors (backend, name, value) VALUES ($1, $2, $3)
     ON CONFLICT (backend, name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
    [KIND, status.pool, JSON.stringify(status)],
  );
}

export async function readPoolStatuses(q: Queryable): Promise<Map<string, PoolStatus & { updatedAt: string }>> {
  const { rows } = await q.query<{ name: string; value: string; updated_at: Date }>(
    'SELECT name, value, updated_at FROM backend_cursors WHERE backend = $1',
    [KIND],
  );
  return new Map(
    rows.map((r) => [
      r.name,
      { ...(JSON.parse(r.value) as PoolStatus), updatedAt: new Date(r.updated_at).toISOString() },
    ]),
  );
}
