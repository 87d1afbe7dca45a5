import { randomUUID } from 'node:crypto';
import type { Queryable } from './db.ts';

/**
 * Pull-worker states, the Edge executor's set trimmed to what a user acts on:
 * idle / running (derived from what the worker runs), maintenance_request → maintenance_pending (draining
 * its tasks) → maintenance_mode, draining (local SIGINT), offline (left cleanly), lost (stopped
 * heartbeating: its leases are taken back).
 */
export const WORKER_STATES = [
  'idle',
  'running',
  'maintenance_request',
  'maintenance_pending',
  'maintenance_mode',
  'draining',
  'offline',
  'lost',
] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

export interface WorkerMetrics {
  cpuPercent?: number;
  memoryUsedBytes?: number;
  memoryTotalBytes?: number;
  diskFreeBytes?: number;
  diskTotalBytes?: number;
  load1?: number;
  load5?: number;
  load15?: number;
}

export interface Worker {
  id: string;
  name: string;
  queues: string[];
  concurrency: number;
  labels: Record<string, string>;
  state: WorkerState;
  maintenance: boolean;
  maintenanceComment: string | null;
  draining: boolean;
  runtime: string | null;
  version: string | null;
  metrics: WorkerMetrics;
  registeredAt: string;
  lastHeartbeat: string;
  /** Slots in use by leased and running workloads. */
  usedSlots: number;
  runningWorkloads: number;
}

export interface WorkerRow {
  id: string;
  name: string;
  queues: string[];
  concurrency: number;
  labels: Record<string, string>;
  state: WorkerState;
  maintenance: boolean;
  maintenance_comment: string | null;
  draining: boolean;
  runtime: string | null;
  version: string | null;
  metrics: WorkerMetrics;
  registered_at: Date;
  last_heartbeat: Date;
  used_slots?: number;
  running_workloads?: number;
}

export function toWorker(row: WorkerRow): Worker {
  return {
    id: row.id,
    name: row.name,
    queues: row.queues,
    concurrency: row.concurrency,
    labels: row.labels,
    state: row.state,
    maintenance: row.maintenance,
    maintenanceComment: row.maintenance_comment,
    draining: row.draining,
    runtime: row.runtime,
    version: row.version,
    metrics: row.metrics,
    registeredAt: new Date(row.registered_at).toISOString(),
    lastHeartbeat: new Date(row.last_heartbeat).toISOString(),
    usedSlots: Number(row.used_slots ?? 0),
    runningWorkloads: Number(row.running_workloads ?? 0),
  };
}

/** Workers are addressed by id (the protocol) or by name (people); the WHERE clause for `$1`. */
function byIdOrName(idOrName: string): string {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrName)
    ? 'k.id = $1::uuid'
    : 'k.name = $1';
}

const SELECT_WORKER = `SELECT k.*,
  (SELECT coalesce(sum(pool_slots), 0)::int FROM workloads w WHERE w.worker_id = k.id AND w.state IN ('pending', 'running')) AS used_slots,
  (SELECT count(*)::int FROM workloads w WHERE w.worker_id = k.id AND w.state IN ('pending', 'running')) AS running_workloads
  FROM workers k`;

export interface WorkerRegistration {
  name: string;
  queues: string[];
  concurrency: number;
  labels: Record<string, string>;
  tokenHash: string;
  runtime: string;
  version: string;
}

/** The row of a worker name, locked for the registration's transaction, with what registration decides on. */
export async function lockWorkerName(
  q: Queryable,
  name: string,
  heartbeatTimeoutSeconds: number,
): Promise<{ id: string; state: WorkerState; tokenHash: string; silent: boolean } | null> {
  const { rows } = await q.query<{ id: string; state: WorkerState; token_hash: string; silent: boolean }>(
    `SELECT id, state, token_hash, last_heartbeat < now() - make_interval(secs => $2) AS silent
     FROM workers WHERE name = $1 FOR UPDATE`,
    [name, heartbeatTimeoutSeconds],
  );
  const row = rows[0];
  return row ? { id: row.id, state: row.state, tokenHash: row.token_hash, silent: row.silent } : null;
}

/**
 * Writes a worker's registration. `keepId`: the same worker came back with its own token (a restart), so it
 * keeps its id and what it holds stays addressed to it; otherwise the name gets a new id, which fences off
 * every report of the previous incarnation (the caller settles what that one held).
 */
export async function writeWorker(q: Queryable, input: WorkerRegistration, keepId: string | null): Promise<Worker> {
  const id = keepId ?? randomUUID();
  const { rows } = await q.query<WorkerRow>(
    `INSERT INTO workers (id, name, queues, concurrency, labels, token_hash, state, runtime, version)
     VALUES ($1::uuid, $2, $3::text[], $4, $5::jsonb, $6, 'idle', $7, $8)
     ON CONFLICT (name) DO UPDATE SET id = EXCLUDED.id, queues = EXCLUDED.queues, concurrency = EXCLUDED.concurrency,
       labels = EXCLUDED.labels, token_hash = EXCLUDED.token_hash, runtime = EXCLUDED.runtime, version = EXCLUDED.version,
       state = CASE WHEN workers.maintenance THEN 'maintenance_mode' ELSE 'idle' END, draining = false,
       registered_at = now(), last_heartbeat = now()
     RETURNING *`,
    [
      id,
      input.name,
      input.queues,
      input.concurrency,
      JSON.stringify(input.labels),
      input.tokenHash,
      input.runtime,
      input.version,
    ],
  );
  return toWorker(rows[0]!);
}

export async function getWorker(q: Queryable, idOrName: string): Promise<Worker | null> {
  const { rows } = await q.query<WorkerRow>(`${SELECT_WORKER} WHERE ${byIdOrName(idOrName)}`, [idOrName]);
  return rows[0] ? toWorker(rows[0]) : null;
}

export async function workerAuth(q: Queryable, id: string): Promise<{ tokenHash: string; state: WorkerState } | null> {
  const { rows } = await q.query<{ token_hash: string; state: WorkerState }>(
    'SELECT token_hash, state FROM workers WHERE id = $1::uuid',
    [id],
  );
  return rows[0] ? { tokenHash: rows[0].token_hash, state: rows[0].state } : null;
}

export async function listWorkers(q: Queryable): Promise<Worker[]> {
  const { rows } = await q.query<WorkerRow>(`${SELECT_WORKER} ORDER BY k.name`);
  return rows.map(toWorker);
}

/** Records a heartbeat and recomputes the state. Lost and offline workers stay so until they register. */
/** What a worker holds, as the service sees it: read with each heartbeat to compare with the worker's view. */
export interface HeldWorkload {
  id: string;
  attempt: number;
  state: 'pending' | 'running';
  /** A stop the service asked for: the worker must stop this attempt (cancel, pending timeout). */
  stopReason: string | null;
  stopMessage: string | null;
  /** When it was leased (pending) or started (running), ms since epoch. */
  sinceMs: number;
}

/**
 * Records a heartbeat, recomputes the state and returns what the worker holds, in one statement (2,000
 * workers heartbeating is a steady load). Lost and offline workers stay so until they register again.
 */
export async function heartbeat(
  q: Queryable,
  id: string,
  input: { metrics?: WorkerMetrics; draining?: boolean },
): Promise<{ worker: Worker; held: HeldWorkload[] } | null> {
  const { rows } = await q.query<WorkerRow & { held: Array<Omit<HeldWorkload, 'sinceMs'> & { since: string }> }>(
    `WITH held AS (
       SELECT id, attempt, state, stop_reason AS "stopReason", stop_message AS "stopMessage",
              CASE WHEN state = 'pending' THEN coalesce(leased_at, updated_at) ELSE coalesce(started_at, updated_at) END AS since,
              pool_slots
       FROM workloads WHERE worker_id = $1::uuid AND state IN ('pending', 'running')
     ),
     upd AS (
       UPDATE workers k SET last_heartbeat = now(),
         metrics = coalesce($2::jsonb, k.metrics),
         -- Draining only ever starts (SIGINT on the worker, or an operator's drain request) and ends with the
         -- process: a heartbeat cannot take a requested drain back. Registering again clears it.
         draining = k.draining OR coalesce($3, false),
         state = CASE
           WHEN k.state IN ('lost', 'offline') THEN k.state
           WHEN k.maintenance AND EXISTS (SELECT 1 FROM held) THEN 'maintenance_pending'
           WHEN k.maintenance THEN 'maintenance_mode'
           WHEN k.draining OR coalesce($3, false) THEN 'draining'
           WHEN EXISTS (SELECT 1 FROM held) THEN 'running'
           ELSE 'idle' END
       WHERE k.id = $1::uuid RETURNING k.*
     )
     SELECT upd.*,
       (SELECT coalesce(sum(pool_slots), 0)::int FROM held) AS used_slots,
       (SELECT count(*)::int FROM held) AS running_workloads,
       (SELECT coalesce(json_agg(json_build_object('id', id, 'attempt', attempt, 'state', state,
                 'stopReason', "stopReason", 'stopMessage', "stopMessage", 'since', since)), '[]'::json) FROM held) AS held
     FROM upd`,
    [id, input.metrics ? JSON.stringify(input.metrics) : null, input.draining ?? null],
  );
  const row = rows[0];
  if (!row) return null;
  const held = row.held.map(({ since, ...h }) => ({ ...h, sinceMs: Date.parse(since) }));
  return { worker: toWorker(row), held };
}

export async function setMaintenance(
  q: Queryable,
  idOrName: string,
  on: boolean,
  comment: string | null,
): Promise<Worker | null> {
  const { rows } = await q.query<WorkerRow>(
    `UPDATE workers k SET maintenance = $2, maintenance_comment = $3,
       state = CASE WHEN k.state IN ('lost', 'offline') THEN k.state
                    WHEN $2 THEN 'maintenance_request'
                    ELSE 'idle' END
     WHERE ${byIdOrName(idOrName)} RETURNING k.*`,
    [idOrName, on, comment],
  );
  return rows[0] ? toWorker(rows[0]) : null;
}

export async function updateWorkerConfig(
  q: Queryable,
  idOrName: string,
  change: { addQueues?: string[]; removeQueues?: string[]; concurrency?: number },
): Promise<Worker | null> {
  const { rows } = await q.query<WorkerRow>(
    `UPDATE workers k SET
       queues = ARRAY(SELECT DISTINCT unnest(k.queues || $2::text[]) EXCEPT SELECT unnest($3::text[]) ORDER BY 1),
       concurrency = coalesce($4, k.concurrency)
     WHERE ${byIdOrName(idOrName)} RETURNING k.*`,
    [idOrName, change.addQueues ?? [], change.removeQueues ?? [], change.concurrency ?? null],
  );
  return rows[0] ? toWorker(rows[0]) : null;
}

/**
 * An operator asks a live worker to drain and leave (the remote twin of SIGINT on the worker): no new leases
 * from now on; the worker learns it from its next poll answer or heartbeat, lets its tasks finish and
 * deregisters. Null when no such worker; a worker that is gone (lost, offline) is returned unchanged.
 */
export async function requestDrain(q: Queryable, idOrName: string): Promise<Worker | null> {
  const { rows } = await q.query<WorkerRow>(
    `UPDATE workers k SET draining = k.state NOT IN ('lost', 'offline') OR k.draining,
       state = CASE WHEN k.state IN ('lost', 'offline') OR k.maintenance THEN k.state ELSE 'draining' END
     WHERE ${byIdOrName(idOrName)} RETURNING k.*`,
    [idOrName],
  );
  return rows[0] ? toWorker(rows[0]) : null;
}

/**
 * Forgets a worker that is gone (offline or lost) and holds nothing: its row is deleted, so it leaves the
 * lists and its name is free. Its finished workloads keep the worker id (their `workerName` becomes null).
 * Returns what was deleted, or why not: `missing`, or the worker's state when it is still live.
 */
export async function deleteGoneWorker(
  q: Queryable,
  idOrName: string,
): Promise<{ deleted: true } | { deleted: false; state: WorkerState | 'missing'; held: number }> {
  const { rows } = await q.query<{ deleted: boolean; state: WorkerState; held: number }>(
    `WITH k AS (SELECT k.id, k.state,
                  (SELECT count(*)::int FROM workloads w WHERE w.worker_id = k.id AND w.state IN ('pending', 'running')) AS held
                FROM workers k WHERE ${byIdOrName(idOrName)} FOR UPDATE),
          gone AS (DELETE FROM workers d USING k WHERE d.id = k.id AND k.state IN ('lost', 'offline') AND k.held = 0
                   RETURNING d.id)
     SELECT EXISTS (SELECT 1 FROM gone) AS deleted, k.state, k.held FROM k`,
    [idOrName],
  );
  const row = rows[0];
  if (!row) return { deleted: false, state: 'missing', held: 0 };
  return row.deleted ? { deleted: true } : { deleted: false, state: row.state, held: row.held };
}

export async function setWorkerState(q: Queryable, id: string, state: WorkerState): Promise<void> {
  await q.query('UPDATE workers SET state = $2 WHERE id = $1::uuid', [id, state]);
}

/** Workers whose last heartbeat is older than the timeout, and not already written off. */
export async function silentWorkers(q: Queryable, timeoutSeconds: number): Promise<string[]> {
  const { rows } = await q.query<{ id: string }>(
    `SELECT id FROM workers WHERE state NOT IN ('lost', 'offline') AND last_heartbeat < now() - make_interval(secs => $1)`,
    [timeoutSeconds],
  );
  return rows.map((r) => r.id);
}

/**
 * Writes a silent worker off, in one conditional statement: a heartbeat that arrived since the caller found
 * it silent keeps it alive (the row no longer matches), so a late heartbeat is never overwritten.
 */
export async function markWorkerLost(q: Queryable, id: string, timeoutSeconds: number): Promise<boolean> {
  const { rows } = await q.query(
    `UPDATE workers SET state = 'lost' WHERE id = $1::uuid AND state NOT IN ('lost', 'offline')
       AND last_heartbeat < now() - make_interval(secs => $2) RETURNING id`,
    [id, timeoutSeconds],
  );
  return rows.length > 0;
}

export async function countWorkersByState(q: Queryable): Promise<Array<{ state: WorkerState; n: number }>> {
  const { rows } = await q.query<{ state: WorkerState; n: number }>(
    'SELECT state, count(*)::int AS n FROM workers GROUP BY state',
  );
  return rows;
}
