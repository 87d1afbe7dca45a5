import { randomUUID } from 'node:crypto';
import type { FailureReason, WorkloadState } from '../domain/states.ts';
import type { BackendName, ValidWorkloadInput, Workload } from '../domain/workload.ts';
import type { Queryable } from './db.ts';

/**
 * SQL for workloads. Every state change is one statement that updates the row and appends its event to the
 * change feed in the same breath (a data-modifying CTE), so the feed can never disagree with the table.
 */

interface WorkloadRow {
  id: string;
  key: string;
  command: string[];
  image: string | null;
  env: Record<string, string>;
  queue: string;
  backend: BackendName;
  pool_slots: number;
  priority_weight: number;
  resources: Workload['resources'];
  exec_config: Record<string, unknown>;
  timeouts: Workload['timeouts'];
  state: WorkloadState;
  attempt: number;
  infra_retries: number;
  max_infra_retries: number;
  worker_id: string | null;
  worker_name?: string | null;
  backend_ref: string | null;
  reason: FailureReason | null;
  exit_code: number | null;
  message: string | null;
  cancel_requested: boolean;
  created_at: Date;
  queued_at: Date;
  leased_at: Date | null;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

export function toWorkload(row: WorkloadRow): Workload {
  return {
    id: row.id,
    key: row.key,
    command: row.command,
    image: row.image,
    env: row.env,
    queue: row.queue,
    backend: row.backend,
    poolSlots: row.pool_slots,
    priorityWeight: row.priority_weight,
    resources: row.resources,
    execConfig: row.exec_config,
    timeouts: row.timeouts,
    state: row.state,
    attempt: row.attempt,
    infraRetries: row.infra_retries,
    maxInfraRetries: row.max_infra_retries,
    workerId: row.worker_id,
    workerName: row.worker_name ?? null,
    backendRef: row.backend_ref,
    reason: row.reason,
    exitCode: row.exit_code,
    message: row.message,
    cancelRequested: row.cancel_requested,
    createdAt: iso(row.created_at)!,
    queuedAt: iso(row.queued_at)!,
    leasedAt: iso(row.leased_at),
    startedAt: iso(row.started_at),
    finishedAt: iso(row.finished_at),
    updatedAt: iso(row.updated_at)!,
  };
}

/** Wraps an UPDATE ... RETURNING * so that each changed row also lands in the change feed. */
function withEvents(update: string): string {
  return `WITH changed AS (${update} RETURNING *),
  ev AS (INSERT INTO events (workload_id, key, state, attempt, reason, exit_code)
         SELECT id, key, state, attempt, reason, exit_code FROM changed)
  SELECT * FROM changed`;
}

export interface InsertResult {
  workload: Workload;
  created: boolean;
}

/**
 * Inserts a batch in one statement. Keys already present are left untouched and returned as they are:
 * submitting is idempotent by key, so a client that retries after a timeout gets the same workload back.
 */
export async function insertWorkloads(
  q: Queryable,
  inputs: readonly ValidWorkloadInput[],
  defaults: { maxInfraRetries: number },
): Promise<InsertResult[]> {
  if (inputs.length === 0) return [];
  // Deduplicate keys within the batch: the first occurrence wins, the rest resolve to it.
  const firstByKey = new Map<string, ValidWorkloadInput>();
  for (const input of inputs) if (!firstByKey.has(input.key)) firstByKey.set(input.key, input);
  const records = [...firstByKey.values()].map((w, ord) => ({
    ord,
    id: randomUUID(),
    key: w.key,
    queue: w.queue,
    backend: w.backend,
    command: w.command,
    image: w.image ?? null,
    env: w.env,
    pool_slots: w.poolSlots,
    priority_weight: w.priorityWeight,
    resources: w.resources,
    exec_config: w.execConfig,
    timeouts: w.timeouts,
    max_infra_retries: w.maxInfraRetries ?? defaults.maxInfraRetries,
    pending_seconds: w.timeouts.pendingSeconds ?? null,
  }));
  const { rows: inserted } = await q.query<WorkloadRow>(
    `WITH input AS (
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
         id uuid, key text, queue text, backend text, command jsonb, image text, env jsonb, pool_slots int,
         priority_weight int, resources jsonb, exec_config jsonb, timeouts jsonb, max_infra_retries int,
         pending_seconds int, ord int)
     ),
     ins AS (
       INSERT INTO workloads (id, key, queue, backend, command, image, env, pool_slots, priority_weight,
                              resources, exec_config, timeouts, max_infra_retries, state, queued_at, pending_deadline)
       SELECT id, key, queue, backend, command, image, env, pool_slots, priority_weight, resources, exec_config,
              timeouts, max_infra_retries, 'queued', clock_timestamp(),
              CASE WHEN pending_seconds IS NULL THEN NULL ELSE now() + make_interval(secs => pending_seconds) END
       FROM input
       ORDER BY ord
       ON CONFLICT (key) DO NOTHING
       RETURNING *
     ),
     ev AS (
       INSERT INTO events (workload_id, key, state, attempt, reason, exit_code)
       SELECT id, key, state, attempt, NULL, NULL FROM ins
     )
     SELECT * FROM ins`,
    [JSON.stringify(records)],
  );
  const byKey = new Map<string, InsertResult>();
  for (const row of inserted) byKey.set(row.key, { workload: toWorkload(row), created: true });
  const missing = [...firstByKey.keys()].filter((k) => !byKey.has(k));
  if (missing.length > 0) {
    const { rows } = await q.query<WorkloadRow>(`${SELECT_WITH_WORKER} WHERE w.key = ANY($1::text[])`, [missing]);
    for (const row of rows) byKey.set(row.key, { workload: toWorkload(row), created: false });
  }
  return inputs.map((input) => {
    const result = byKey.get(input.key);
    if (!result) throw new Error(`workload with key ${input.key} vanished during insert`);
    return result;
  });
}

const SELECT_WITH_WORKER =
  'SELECT w.*, k.name AS worker_name FROM workloads w LEFT JOIN workers k ON k.id = w.worker_id';

export async function getWorkload(q: Queryable, idOrKey: string): Promise<Workload | null> {
  const isUuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrKey);
  const { rows } = await q.query<WorkloadRow>(
    isUuid
      ? `${SELECT_WITH_WORKER} WHERE w.id = $1::uuid OR w.key = $2::text`
      : `${SELECT_WITH_WORKER} WHERE w.key = $1`,
    isUuid ? [idOrKey, idOrKey] : [idOrKey],
  );
  return rows[0] ? toWorkload(rows[0]) : null;
}

export interface ListFilter {
  state?: WorkloadState | undefined;
  queue?: string | undefined;
  workerId?: string | undefined;
  limit: number;
  /** Cursor: the `createdAt|id` of the last row of the previous page. */
  before?: string | undefined;
}

export async function listWorkloads(q: Queryable, filter: ListFilter): Promise<Workload[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (clause: string, value: unknown) => {
    params.push(value);
    where.push(clause.replace('?', `$${params.length}`));
  };
  if (filter.state) add('w.state = ?', filter.state);
  if (filter.queue) add('w.queue = ?', filter.queue);
  if (filter.workerId) add('w.worker_id = ?::uuid', filter.workerId);
  if (filter.before) {
    const [at, id] = filter.before.split('|');
    params.push(at, id);
    where.push(`(w.created_at, w.id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
  }
  params.push(filter.limit);
  const { rows } = await q.query<WorkloadRow>(
    `${SELECT_WITH_WORKER} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY w.created_at DESC, w.id DESC LIMIT $${params.length}`,
    params,
  );
  return rows.map(toWorkload);
}

export interface LeaseRow {
  id: string;
  pool_slots: number;
  priority_weight: number;
  queued_at: Date;
}

/**
 * Locks up to `limit` queued pool workloads that could fit `freeSlots`, in lease order. SKIP LOCKED lets
 * many workers lease at once without waiting on each other's rows; the caller picks which to take and
 * updates them in the same transaction.
 */
export async function lockLeaseCandidates(
  q: Queryable,
  queues: readonly string[],
  freeSlots: number,
  limit: number,
): Promise<LeaseRow[]> {
  const { rows } = await q.query<LeaseRow>(
    // Queue by queue in the dispatch index's own order, then merged: over `queue = ANY(...)` the planner
    // fetched and sorted every queued row of the worker's queues on each pass (a backlog of thousands made
    // each lease pass slower). With several queues this locks up to `limit` rows per queue for the
    // transaction's few milliseconds; other polls skip those and take the next.
    `SELECT c.id, c.pool_slots, c.priority_weight, c.queued_at FROM unnest($1::text[]) AS qn(name),
     LATERAL (SELECT w.id, w.pool_slots, w.priority_weight, w.queued_at, w.enqueue_seq FROM workloads w
              WHERE w.backend = 'pool' AND w.queue = qn.name AND w.state = 'queued' AND w.pool_slots <= $2
              ORDER BY w.priority_weight DESC, w.enqueue_seq LIMIT $3
              FOR UPDATE SKIP LOCKED) c
     ORDER BY c.priority_weight DESC, c.enqueue_seq
     LIMIT $3`,
    [queues, freeSlots, limit],
  );
  return rows;
}

/**
 * Whether a queued pool workload on these queues needs more than `freeSlots` but fits the worker's
 * `concurrency`: one the worker could run once some of its slots come free.
 */
export async function hasQueuedBiggerThan(
  q: Queryable,
  queues: readonly string[],
  freeSlots: number,
  concurrency: number,
): Promise<boolean> {
  // Queue by queue through the dispatch index, as lockLeaseCandidates: an EXISTS-like LIMIT 1 over
  // `queue = ANY(...)` lets the planner pick a sequential scan of the table.
  const { rows } = await q.query(
    `SELECT 1 FROM unnest($1::text[]) AS qn(name),
     LATERAL (SELECT 1 FROM workloads w WHERE w.backend = 'pool' AND w.queue = qn.name AND w.state = 'queued'
              AND w.pool_slots > $2 AND w.pool_slots <= $3 ORDER BY w.priority_weight DESC, w.enqueue_seq LIMIT 1) x
     LIMIT 1`,
    [queues, freeSlots, concurrency],
  );
  return rows.length > 0;
}

export async function markLeased(q: Queryable, ids: readonly string[], workerId: string): Promise<Workload[]> {
  if (ids.length === 0) return [];
  const { rows } = await q.query<WorkloadRow>(
    withEvents(`UPDATE workloads SET state = 'pending', worker_id = $2::uuid, leased_at = now(), updated_at = now()
                WHERE id = ANY($1::uuid[]) AND state = 'queued'`),
    [ids, workerId],
  );
  return rows.map(toWorkload);
}

/** Fenced by attempt and owner: a report about an older attempt, or from another worker, changes nothing. */
export async function markRunning(
  q: Queryable,
  id: string,
  attempt: number,
  workerId: string | null,
): Promise<Workload | null> {
  const { rows } = await q.query<WorkloadRow>(
    withEvents(`UPDATE workloads SET state = 'running', started_at = now(), updated_at = now(), pending_deadline = NULL,
                  run_deadline = CASE WHEN timeouts ? 'runSeconds'
                                      THEN now() + make_interval(secs => (timeouts->>'runSeconds')::int) END
                WHERE id = $1::uuid AND attempt = $2 AND worker_id IS NOT DISTINCT FROM $3::uuid
                  AND state IN ('pending', 'submitting')`),
    [id, attempt, workerId],
  );
  return rows[0] ? toWorkload(rows[0]) : null;
}

export interface Outcome {
  state: 'succeeded' | 'failed' | 'cancelled';
  reason?: FailureReason | null;
  exitCode?: number | null;
  message?: string | null;
}

/** Ends an attempt, fenced like markRunning. */
export async function finishAttempt(
  q: Queryable,
  id: string,
  attempt: number,
  workerId: string | null,
  outcome: Outcome,
): Promise<Workload | null> {
  const { rows } = await q.query<WorkloadRow>(
    withEvents(`UPDATE workloads SET state = $4, reason = $5, exit_code = $6, message = $7, finished_at = now(),
                  updated_at = now(), pending_deadline = NULL, run_deadline = NULL
                WHERE id = $1::uuid AND attempt = $2 AND worker_id IS NOT DISTINCT FROM $3::uuid
                  AND state IN ('queued', 'submitting', 'pending', 'running')`),
    [id, attempt, workerId, outcome.state, outcome.reason ?? null, outcome.exitCode ?? null, outcome.message ?? null],
  );
  return rows[0] ? toWorkload(rows[0]) : null;
}

/** Puts a failed-before-start attempt back in the queue as a new attempt (an infrastructure retry). */
export async function requeueAsNewAttempt(
  q: Queryable,
  id: string,
  attempt: number,
  reason: FailureReason,
  message: string,
): Promise<Workload | null> {
  const { rows } = await q.query<WorkloadRow>(
    withEvents(`UPDATE workloads SET state = 'queued', attempt = attempt + 1, infra_retries = infra_retries + 1,
                  worker_id = NULL, backend_ref = NULL, reason = $3, message = $4, leased_at = NULL, started_at = NULL,
                  queued_at = clock_timestamp(), enqueue_seq = nextval('workloads_enqueue_seq'), updated_at = now(),
                  run_deadline = NULL,
                  pending_deadline = CASE WHEN timeouts ? 'pendingSeconds'
                                          THEN now() + make_interval(secs => (timeouts->>'pendingSeconds')::int) END
                WHERE id = $1::uuid AND attempt = $2 AND state IN ('queued', 'submitting', 'pending')`),
    [id, attempt, reason, message],
  );
  return rows[0] ? toWorkload(rows[0]) : null;
}

/** Cancels a queued workload at once; flags a live one so its backend or worker stops it. */
export async function requestCancel(q: Queryable, id: string): Promise<Workload | null> {
  const { rows: queued } = await q.query<WorkloadRow>(
    withEvents(`UPDATE workloads SET state = 'cancelled', reason = 'cancelled', cancel_requested = true,
                  finished_at = now(), updated_at = now(), pending_deadline = NULL
                WHERE id = $1::uuid AND state = 'queued'`),
    [id],
  );
  if (queued[0]) return toWorkload(queued[0]);
  const { rows } = await q.query<WorkloadRow>(
    `UPDATE workloads SET cancel_requested = true, updated_at = now()
     WHERE id = $1::uuid AND state IN ('submitting', 'pending', 'running') RETURNING *`,
    [id],
  );
  return rows[0] ? toWorkload(rows[0]) : null;
}

/** Live workloads held by a worker (leased or running). */
export async function workloadsOfWorker(q: Queryable, workerId: string): Promise<Workload[]> {
  const { rows } = await q.query<WorkloadRow>(
    `${SELECT_WITH_WORKER} WHERE w.worker_id = $1::uuid AND w.state IN ('pending', 'running')`,
    [workerId],
  );
  return rows.map(toWorkload);
}

/** Live workloads whose pending deadline passed: they become `unschedulable` failures. */
export async function pastPendingDeadline(q: Queryable, limit: number): Promise<Workload[]> {
  const { rows } = await q.query<WorkloadRow>(
    `SELECT * FROM workloads WHERE state IN ('queued', 'submitting', 'pending') AND pending_deadline < now()
     ORDER BY pending_deadline LIMIT $1`,
    [limit],
  );
  return rows.map(toWorkload);
}

export interface QueueStats {
  queue: string;
  backend: BackendName;
  queued: number;
  queuedSlots: number;
  pending: number;
  running: number;
  runningSlots: number;
}

export async function queueStats(q: Queryable): Promise<QueueStats[]> {
  const { rows } = await q.query<QueueStats>(
    `SELECT queue, backend,
            count(*) FILTER (WHERE state = 'queued')::int AS queued,
            coalesce(sum(pool_slots) FILTER (WHERE state = 'queued'), 0)::int AS "queuedSlots",
            count(*) FILTER (WHERE state IN ('submitting', 'pending'))::int AS pending,
            count(*) FILTER (WHERE state = 'running')::int AS running,
            coalesce(sum(pool_slots) FILTER (WHERE state IN ('pending', 'running')), 0)::int AS "runningSlots"
     FROM workloads WHERE state IN ('queued', 'submitting', 'pending', 'running')
     GROUP BY queue, backend ORDER BY queue, backend`,
  );
  return rows;
}

// ---------------------------------------------------------------- push backends (the dispatcher)

/**
 * Claims up to `limit` queued workloads of a push backend, in dispatch order, and moves them to
 * `submitting` in the same statement. SKIP LOCKED lets several service instances claim at once without
 * waiting on (or taking) each other's rows; the state change is committed before any backend call, so a
 * crash between claim and submit leaves a `submitting` row that reconcile resolves at start-up.
 */
export async function claimForSubmit(q: Queryable, backend: BackendName, limit: number): Promise<Workload[]> {
  const { rows } = await q.query<WorkloadRow & { enqueue_seq: string }>(
    withEvents(`UPDATE workloads SET state = 'submitting', updated_at = now()
                WHERE id IN (SELECT id FROM workloads WHERE state = 'queued' AND backend = $1
                             ORDER BY priority_weight DESC, enqueue_seq LIMIT $2 FOR UPDATE SKIP LOCKED)
                  AND state = 'queued'`),
    [backend, limit],
  );
  // UPDATE returns rows in no particular order; submit them in dispatch order.
  rows.sort((a, b) => b.priority_weight - a.priority_weight || Number(a.enqueue_seq) - Number(b.enqueue_seq));
  return rows.map(toWorkload);
}

/**
 * Records the backend's reference of a submitted attempt and moves it to `pending`. The backend's watcher
 * may have seen the job start (or even end) before this runs; then only the reference is recorded.
 */
export async function markSubmitted(
  q: Queryable,
  id: string,
  attempt: number,
  ref: string | null,
): Promise<Workload | null> {
  const { rows } = await q.query<WorkloadRow>(
    withEvents(`UPDATE workloads SET state = 'pending', backend_ref = $3, leased_at = now(), updated_at = now()
                WHERE id = $1::uuid AND attempt = $2 AND state = 'submitting'`),
    [id, attempt, ref],
  );
  if (rows[0]) return toWorkload(rows[0]);
  const { rows: others } = await q.query<WorkloadRow>(
    `UPDATE workloads SET backend_ref = $3, leased_at = coalesce(leased_at, now())
     WHERE id = $1::uuid AND attempt = $2 AND backend_ref IS NULL RETURNING *`,
    [id, attempt, ref],
  );
  return others[0] ? toWorkload(others[0]) : null;
}

/** A claimed attempt that was never submitted goes back to the queue, same attempt, same place. */
export async function releaseClaim(q: Queryable, id: string, attempt: number): Promise<Workload | null> {
  const { rows } = await q.query<WorkloadRow>(
    withEvents(`UPDATE workloads SET state = 'queued', updated_at = now()
                WHERE id = $1::uuid AND attempt = $2 AND state = 'submitting'`),
    [id, attempt],
  );
  return rows[0] ? toWorkload(rows[0]) : null;
}

export interface InFlightRow {
  workloadId: string;
  attempt: number;
  state: 'submitting' | 'pending' | 'running';
  ref: string | null;
}

/** Attempts a backend was given and has not finished: what reconcile must account for at start-up. */
export async function inFlightOf(q: Queryable, backend: BackendName): Promise<InFlightRow[]> {
  const { rows } = await q.query<InFlightRow>(
    `SELECT id AS "workloadId", attempt, state, backend_ref AS ref FROM workloads
     WHERE backend = $1 AND state IN ('submitting', 'pending', 'running') ORDER BY enqueue_seq`,
    [backend],
  );
  return rows;
}

/** Live workloads of push backends whose run deadline passed: stopped and failed by the reaper. */
export async function pastRunDeadline(q: Queryable, limit: number): Promise<Workload[]> {
  const { rows } = await q.query<WorkloadRow>(
    `SELECT * FROM workloads WHERE state = 'running' AND backend <> 'pool' AND run_deadline < now()
     ORDER BY run_deadline LIMIT $1`,
    [limit],
  );
  return rows.map(toWorkload);
}
