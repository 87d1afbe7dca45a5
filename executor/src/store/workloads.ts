import { randomUUID } from 'node:crypto';
import type { FailureReason, TransitionName, WorkloadState } from '../domain/states.ts';
import type { BackendName, ValidWorkloadInput, Workload } from '../domain/workload.ts';
import { ConflictError } from '../errors.ts';
import type { Queryable } from './db.ts';
import { fromStates, toState } from './transition-sql.ts';

/**
 * SQL for workloads. Every state change is one statement that updates the row and appends its event to the
 * change feed in the same breath (a data-modifying CTE), so the feed can never disagree with the table.
 */

export interface WorkloadRow {
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
  claimed_by: string | null;
  stop_reason: FailureReason | null;
  stop_message: string | null;
  secret_digest?: string;
  secret_env?: Uint8Array | null;
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
    stopReason: row.stop_reason ?? null,
    stopMessage: row.stop_message ?? null,
    claimedBy: row.claimed_by ?? null,
    createdAt: iso(row.created_at)!,
    queuedAt: iso(row.queued_at)!,
    leasedAt: iso(row.leased_at),
    startedAt: iso(row.started_at),
    finishedAt: iso(row.finished_at),
    updatedAt: iso(row.updated_at)!,
  };
}

/**
 * A workload with its secret environment still sealed, as the statements that hand work out return it (so the
 * hot path needs no second query for secrets). Never serialised: the consumer opens it for the worker or
 * backend and drops the field (see withoutSealed).
 */
export type WithSealed<T> = T & { sealedSecretEnv: Buffer | null };

export function withSealed(row: WorkloadRow): WithSealed<Workload> {
  return { ...toWorkload(row), sealedSecretEnv: row.secret_env ? Buffer.from(row.secret_env) : null };
}

export function withoutSealed<T extends object>(w: WithSealed<T>): T {
  const { sealedSecretEnv: _dropped, ...rest } = w;
  return rest as unknown as T;
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

/** What insertWorkloads needs of the secrets (service/secrets.ts): sealing and a keyed digest. */
export interface SecretSealer {
  seal(workloadId: string, env: Record<string, string>): Buffer | null;
  digest(env: Record<string, string>): string;
}

/**
 * Inserts a batch in one statement. Submitting is idempotent by key: a key already present with the same
 * body returns the stored workload (`created: false`), so a client that retries after a timeout gets the
 * same workload back. The same key with a different body is not the same workload: that item gets a
 * ConflictError naming the fields that differ (an Error in its place of the result), and nothing is written
 * for it. The same key twice in one batch is one workload: the first occurrence makes it.
 */
export async function insertWorkloads(
  q: Queryable,
  inputs: readonly ValidWorkloadInput[],
  defaults: { maxInfraRetries: number },
  secrets: SecretSealer,
): Promise<Array<InsertResult | ConflictError>> {
  if (inputs.length === 0) return [];
  const digests = inputs.map((w) => secrets.digest(w.secretEnv));
  const firstByKey = new Map<string, number>();
  inputs.forEach((w, i) => {
    if (!firstByKey.has(w.key)) firstByKey.set(w.key, i);
  });
  const records = [...firstByKey.values()].map((i, ord) => {
    const w = inputs[i]!;
    const id = randomUUID();
    return {
      ord,
      id,
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
      secret_env: secrets.seal(id, w.secretEnv)?.toString('base64') ?? null,
      secret_digest: digests[i]!,
    };
  });
  const { rows: inserted } = await q.query<WorkloadRow>(
    `WITH input AS (
       SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(
         id uuid, key text, queue text, backend text, command jsonb, image text, env jsonb, pool_slots int,
         priority_weight int, resources jsonb, exec_config jsonb, timeouts jsonb, max_infra_retries int,
         pending_seconds int, ord int, secret_env text, secret_digest text)
     ),
     ins AS (
       INSERT INTO workloads (id, key, queue, backend, command, image, env, pool_slots, priority_weight,
                              resources, exec_config, timeouts, max_infra_retries, state, queued_at, pending_deadline,
                              secret_env, secret_digest)
       SELECT id, key, queue, backend, command, image, env, pool_slots, priority_weight, resources, exec_config,
              timeouts, max_infra_retries, 'queued', clock_timestamp(),
              CASE WHEN pending_seconds IS NULL THEN NULL ELSE now() + make_interval(secs => pending_seconds) END,
              decode(secret_env, 'base64'), secret_digest
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
  const byKey = new Map<string, { row: WorkloadRow; created: boolean }>();
  for (const row of inserted) byKey.set(row.key, { row, created: true });
  const missing = [...firstByKey.keys()].filter((k) => !byKey.has(k));
  if (missing.length > 0) {
    const { rows } = await q.query<WorkloadRow>(`${SELECT_WITH_WORKER} WHERE w.key = ANY($1::text[])`, [missing]);
    for (const row of rows) byKey.set(row.key, { row, created: false });
  }
  return inputs.map((input, i) => {
    const found = byKey.get(input.key);
    if (!found) throw new Error(`workload with key ${input.key} vanished during insert`);
    const first = firstByKey.get(input.key) === i;
    const differs = differingFields(found.row, input, digests[i]!, defaults);
    if (differs.length > 0) {
      return new ConflictError(
        `key '${input.key}' was submitted before with another ${differs.join(', ')}: the same key means the same ` +
          'workload; submit a new workload under a new key',
        { field: 'key', differs },
      );
    }
    return { workload: toWorkload(found.row), created: found.created && first };
  });
}

/** The fields of a submission that differ from the workload stored under its key. */
function differingFields(
  row: WorkloadRow,
  input: ValidWorkloadInput,
  digest: string,
  defaults: { maxInfraRetries: number },
): string[] {
  const pairs: Array<[string, unknown, unknown]> = [
    ['command', row.command, input.command],
    ['image', row.image, input.image ?? null],
    ['env', row.env, input.env],
    ['secretEnv', row.secret_digest ?? '', digest],
    ['queue', row.queue, input.queue],
    ['backend', row.backend, input.backend],
    ['poolSlots', row.pool_slots, input.poolSlots],
    ['priorityWeight', row.priority_weight, input.priorityWeight],
    ['resources', row.resources, input.resources],
    ['execConfig', row.exec_config, input.execConfig],
    ['timeouts', row.timeouts, input.timeouts],
    ['maxInfraRetries', row.max_infra_retries, input.maxInfraRetries ?? defaults.maxInfraRetries],
  ];
  return pairs.filter(([, a, b]) => canonical(a) !== canonical(b)).map(([name]) => name);
}

/** JSON with object keys sorted: jsonb does not keep key order, so equal values must print alike. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
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
  backend?: BackendName | undefined;
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
  if (filter.backend) add('w.backend = ?', filter.backend);
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

/**
 * Fenced by attempt and owner: a report about an older attempt, or from another worker, changes nothing. A
 * pending-timeout stop that was still on its way is dropped: the task started, so the timeout no longer
 * applies (cancels and run timeouts stay).
 */
export async function markRunning(
  q: Queryable,
  id: string,
  attempt: number,
  workerId: string | null,
): Promise<Workload | null> {
  const { rows } = await q.query<WorkloadRow>(
    withEvents(`UPDATE workloads SET state = ${toState('start')}, started_at = now(), updated_at = now(), pending_deadline = NULL,
                  run_deadline = CASE WHEN timeouts ? 'runSeconds'
                                      THEN now() + make_interval(secs => (timeouts->>'runSeconds')::int) END,
                  stop_reason = CASE WHEN stop_reason = 'unschedulable' THEN NULL ELSE stop_reason END,
                  stop_message = CASE WHEN stop_reason = 'unschedulable' THEN NULL ELSE stop_message END
                WHERE id = $1::uuid AND attempt = $2 AND worker_id IS NOT DISTINCT FROM $3::uuid
                  AND ${fromStates('start')}`),
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

const END_TRANSITION: Record<Outcome['state'], TransitionName> = {
  succeeded: 'succeed',
  failed: 'fail',
  cancelled: 'cancel',
};

/** Ends an attempt, fenced like markRunning (owner null: a push backend, or the service itself). */
export async function finishAttempt(
  q: Queryable,
  id: string,
  attempt: number,
  workerId: string | null,
  outcome: Outcome,
): Promise<Workload | null> {
  const edge = END_TRANSITION[outcome.state];
  const { rows } = await q.query<WorkloadRow>(
    withEvents(`UPDATE workloads SET state = ${toState(edge)}, reason = $4, exit_code = $5, message = $6, finished_at = now(),
                  updated_at = now(), pending_deadline = NULL, run_deadline = NULL
                WHERE id = $1::uuid AND attempt = $2 AND worker_id IS NOT DISTINCT FROM $3::uuid
                  AND ${fromStates(edge)}`),
    [id, attempt, workerId, outcome.reason ?? null, outcome.exitCode ?? null, outcome.message ?? null],
  );
  return rows[0] ? toWorkload(rows[0]) : null;
}

/**
 * Puts an attempt that never started back in the queue as a new attempt. `countsAsRetry` is false when the
 * worker holding the attempt handed it back unstarted (the `handBack` transition, which may leave `running`:
 * domain/states.ts), which costs the workload none of its infrastructure retries. Never for a workload a
 * cancel was asked for.
 */
export async function requeueAsNewAttempt(
  q: Queryable,
  id: string,
  attempt: number,
  reason: FailureReason,
  message: string,
  countsAsRetry = true,
): Promise<Workload | null> {
  const { rows } = await q.query<WorkloadRow>(
    withEvents(`UPDATE workloads SET state = ${toState('retry')}, attempt = attempt + 1,
                  infra_retries = infra_retries + CASE WHEN $5 THEN 1 ELSE 0 END,
                  worker_id = NULL, backend_ref = NULL, claimed_by = NULL, claimed_at = NULL, reason = $3, message = $4,
                  leased_at = NULL, started_at = NULL, stop_reason = NULL, stop_message = NULL,
                  stop_requested_at = NULL, stop_sent_at = NULL,
                  queued_at = clock_timestamp(), enqueue_seq = nextval('workloads_enqueue_seq'), updated_at = now(),
                  run_deadline = NULL,
                  pending_deadline = CASE WHEN timeouts ? 'pendingSeconds'
                                          THEN now() + make_interval(secs => (timeouts->>'pendingSeconds')::int) END
                WHERE id = $1::uuid AND attempt = $2 AND ${fromStates(countsAsRetry ? 'retry' : 'handBack')}
                  AND NOT cancel_requested`),
    [id, attempt, reason, message, countsAsRetry],
  );
  return rows[0] ? toWorkload(rows[0]) : null;
}

/**
 * The row of one attempt, locked for the rest of the transaction: decisions about an attempt's end (retry or
 * fail, which reason) are made from this, never from a read taken before the transaction.
 */
export async function lockAttempt(q: Queryable, id: string, attempt: number): Promise<Workload | null> {
  const { rows } = await q.query<WorkloadRow>(
    'SELECT * FROM workloads WHERE id = $1::uuid AND attempt = $2 FOR UPDATE',
    [id, attempt],
  );
  return rows[0] ? toWorkload(rows[0]) : null;
}

/**
 * Cancels a queued workload at once (no attempt exists); for a live one records the cancel as a stop
 * request, which the attempt's worker or backend is asked to carry out until it confirms the end. A cancel
 * outranks a stop of another reason already on its way.
 */
export async function requestCancel(q: Queryable, id: string): Promise<Workload | null> {
  const { rows: queued } = await q.query<WorkloadRow>(
    withEvents(`UPDATE workloads SET state = ${toState('cancel')}, reason = 'cancelled', cancel_requested = true,
                  finished_at = now(), updated_at = now(), pending_deadline = NULL
                WHERE id = $1::uuid AND state = 'queued'`),
    [id],
  );
  if (queued[0]) return toWorkload(queued[0]);
  const { rows } = await q.query<WorkloadRow>(
    `UPDATE workloads SET cancel_requested = true, stop_reason = 'cancelled', stop_message = 'cancelled by request',
       stop_requested_at = now(), stop_sent_at = NULL, updated_at = now()
     WHERE id = $1::uuid AND state IN ('submitting', 'pending', 'running') RETURNING *`,
    [id],
  );
  return rows[0] ? toWorkload(rows[0]) : null;
}

/**
 * Asks for an attempt to be stopped for `reason` (a timeout), unless a stop is already on its way. Nothing
 * changes state here: the attempt ends when its worker or backend confirms, and only then is it failed (or,
 * for a pending timeout of an attempt that never started, retried).
 */
export async function requestStop(
  q: Queryable,
  id: string,
  attempt: number,
  reason: FailureReason,
  message: string,
): Promise<Workload | null> {
  const { rows } = await q.query<WorkloadRow>(
    `UPDATE workloads SET stop_reason = $3, stop_message = $4, stop_requested_at = now(), stop_sent_at = NULL,
       pending_deadline = NULL, run_deadline = NULL, updated_at = now()
     WHERE id = $1::uuid AND attempt = $2 AND stop_reason IS NULL AND state IN ('submitting', 'pending', 'running')
     RETURNING *`,
    [id, attempt, reason, message],
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

/** Live workloads whose pending deadline passed and that no stop is on its way for. */
export async function pastPendingDeadline(q: Queryable, limit: number): Promise<Workload[]> {
  const { rows } = await q.query<WorkloadRow>(
    `SELECT * FROM workloads WHERE state IN ('queued', 'submitting', 'pending') AND pending_deadline < now()
       AND stop_reason IS NULL
     ORDER BY pending_deadline LIMIT $1`,
    [limit],
  );
  return rows.map(toWorkload);
}

/** Running push-backend workloads past their run deadline (workers enforce their own). */
export async function pastRunDeadline(q: Queryable, limit: number): Promise<Workload[]> {
  const { rows } = await q.query<WorkloadRow>(
    `SELECT * FROM workloads WHERE state = 'running' AND run_deadline < now() AND backend <> 'pool'
       AND stop_reason IS NULL
     ORDER BY run_deadline LIMIT $1`,
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
  /** Seconds the oldest queued workload has waited. */
  oldestQueuedSeconds: number;
}

export async function queueStats(q: Queryable): Promise<QueueStats[]> {
  const { rows } = await q.query<QueueStats>(
    `SELECT queue, backend,
            count(*) FILTER (WHERE state = 'queued')::int AS queued,
            coalesce(sum(pool_slots) FILTER (WHERE state = 'queued'), 0)::int AS "queuedSlots",
            count(*) FILTER (WHERE state IN ('submitting', 'pending'))::int AS pending,
            count(*) FILTER (WHERE state = 'running')::int AS running,
            coalesce(sum(pool_slots) FILTER (WHERE state IN ('pending', 'running')), 0)::int AS "runningSlots",
            coalesce(extract(epoch FROM now() - min(queued_at) FILTER (WHERE state = 'queued')), 0)::float8
              AS "oldestQueuedSeconds"
     FROM workloads WHERE state IN ('queued', 'submitting', 'pending', 'running')
     GROUP BY queue, backend ORDER BY queue, backend`,
  );
  return rows;
}

// ---------------------------------------------------------------- push backends (the dispatcher)

/**
 * Claims up to `limit` queued workloads of a push backend for `instanceId`, in dispatch order, and moves them
 * to `submitting` in the same statement. SKIP LOCKED lets several service instances claim at once without
 * waiting on (or taking) each other's rows; the claim is committed before any backend call, so a crash
 * between claim and submit leaves a `submitting` row owned by a dead instance, which the leader reconciles.
 *
 * The candidates are picked once, as an array (an init plan), not as `id IN (subquery)`: joined as a
 * semi-join, the planner may rescan the subquery for each row it updates, and each rescan skips the rows this
 * statement already changed and locks the next ones, so a claim of 2 took all 8 queued rows (seen with
 * rows inserted earlier in the same transaction, where the planner has no statistics for them).
 */
export async function claimForSubmit(
  q: Queryable,
  backend: BackendName,
  limit: number,
  instanceId: string,
): Promise<Array<WithSealed<Workload>>> {
  const { rows } = await q.query<WorkloadRow & { enqueue_seq: string }>(
    withEvents(`UPDATE workloads SET state = ${toState('claim')}, claimed_by = $3::uuid, claimed_at = now(), updated_at = now()
                WHERE id = ANY(ARRAY(SELECT id FROM workloads WHERE state = 'queued' AND backend = $1
                                     ORDER BY priority_weight DESC, enqueue_seq LIMIT $2 FOR UPDATE SKIP LOCKED))
                  AND ${fromStates('claim')}`),
    [backend, limit, instanceId],
  );
  // UPDATE returns rows in no particular order; submit them in dispatch order.
  rows.sort((a, b) => b.priority_weight - a.priority_weight || Number(a.enqueue_seq) - Number(b.enqueue_seq));
  return rows.map(withSealed);
}

/**
 * Records the backend's reference of a submitted attempt and moves it to `pending`. The backend's watcher
 * may have seen the job start (or even end: a fast task on the local backend) before this runs; then only
 * the reference is recorded, on the same attempt, never on one back in the queue (a released claim, whose
 * next submission makes its own job).
 */
export async function markSubmitted(
  q: Queryable,
  id: string,
  attempt: number,
  ref: string | null,
): Promise<Workload | null> {
  const { rows } = await q.query<WorkloadRow>(
    withEvents(`UPDATE workloads SET state = ${toState('submitted')}, backend_ref = $3, leased_at = now(), updated_at = now()
                WHERE id = $1::uuid AND attempt = $2 AND ${fromStates('submitted')}`),
    [id, attempt, ref],
  );
  if (rows[0]) return toWorkload(rows[0]);
  const { rows: others } = await q.query<WorkloadRow>(
    `UPDATE workloads SET backend_ref = $3, leased_at = coalesce(leased_at, now())
     WHERE id = $1::uuid AND attempt = $2 AND backend_ref IS NULL
       AND state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled') RETURNING *`,
    [id, attempt, ref],
  );
  return others[0] ? toWorkload(others[0]) : null;
}

/**
 * A claimed attempt that was never submitted goes back to the queue, same attempt, same place. `owner`: only
 * if the claim is still that instance's (a leader releasing a dead instance's claim races nobody else).
 */
export async function releaseClaim(
  q: Queryable,
  id: string,
  attempt: number,
  owner?: string | null,
): Promise<Workload | null> {
  const { rows } = await q.query<WorkloadRow>(
    withEvents(`UPDATE workloads SET state = ${toState('release')}, claimed_by = NULL, claimed_at = NULL, updated_at = now()
                WHERE id = $1::uuid AND attempt = $2 AND ${fromStates('release')}
                  AND ($3::boolean IS FALSE OR claimed_by IS NOT DISTINCT FROM $4::uuid)`),
    [id, attempt, owner !== undefined, owner ?? null],
  );
  return rows[0] ? toWorkload(rows[0]) : null;
}

/**
 * Takes over an attempt of a dead instance (compare-and-set on the old owner, so two leaders overlapping for
 * a moment cannot both take it). A `submitting` attempt whose job the backend found moves to `pending` with
 * the job's reference; the state is otherwise unchanged.
 */
export async function adoptAttempt(
  q: Queryable,
  id: string,
  attempt: number,
  from: string | null,
  to: string,
  ref: string | null,
): Promise<Workload | null> {
  const { rows } = await q.query<WorkloadRow>(
    withEvents(`UPDATE workloads SET claimed_by = $4::uuid,
                  state = CASE WHEN state = 'submitting' THEN ${toState('submitted')} ELSE state END,
                  backend_ref = coalesce($5, backend_ref), leased_at = coalesce(leased_at, now()), updated_at = now()
                WHERE id = $1::uuid AND attempt = $2 AND claimed_by IS NOT DISTINCT FROM $3::uuid
                  AND state IN ('submitting', 'pending', 'running')`),
    [id, attempt, from, to, ref],
  );
  return rows[0] ? toWorkload(rows[0]) : null;
}

export interface InFlightRow {
  workloadId: string;
  attempt: number;
  state: 'submitting' | 'pending' | 'running';
  ref: string | null;
  claimedBy: string | null;
  claimedAt: number;
}

const IN_FLIGHT_COLUMNS = `id AS "workloadId", attempt, state, backend_ref AS ref, claimed_by AS "claimedBy",
  (extract(epoch FROM coalesce(claimed_at, updated_at)) * 1000)::float8 AS "claimedAt"`;

/** Attempts of a push backend that `instanceId` owns and that have not ended, oldest claim first. */
export async function inFlightOwnedBy(q: Queryable, backend: BackendName, instanceId: string): Promise<InFlightRow[]> {
  const { rows } = await q.query<InFlightRow>(
    `SELECT ${IN_FLIGHT_COLUMNS} FROM workloads
     WHERE backend = $1 AND claimed_by = $2::uuid AND state IN ('submitting', 'pending', 'running')
     ORDER BY claimed_at, id`,
    [backend, instanceId],
  );
  return rows.map((r) => ({ ...r, claimedAt: Number(r.claimedAt) }));
}

/**
 * Attempts of a push backend nobody watches: owned by an instance that is not alive (or by none). What the
 * leader reconciles.
 */
export async function inFlightOrphans(
  q: Queryable,
  backend: BackendName,
  instanceTimeoutSeconds: number,
  limit: number,
  self: string,
): Promise<InFlightRow[]> {
  // Never the asking instance's own claims: it is alive (it is asking), and its dispatcher may be between
  // claiming a row and submitting it, where the backend would honestly answer "absent" (a late heartbeat of
  // its own must not make the leader release, and so resubmit, what it is submitting).
  const { rows } = await q.query<InFlightRow>(
    `SELECT ${IN_FLIGHT_COLUMNS} FROM workloads w
     WHERE backend = $1 AND state IN ('submitting', 'pending', 'running')
       AND w.claimed_by IS DISTINCT FROM $4::uuid
       AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = w.claimed_by AND NOT i.stopping
                         AND i.heartbeat_at > now() - make_interval(secs => $2))
     ORDER BY claimed_at NULLS FIRST, id LIMIT $3`,
    [backend, instanceTimeoutSeconds, limit, self],
  );
  return rows.map((r) => ({ ...r, claimedAt: Number(r.claimedAt) }));
}

/** Stop requests of `instanceId`'s push attempts that were never sent, or not for `resendSeconds`. */
export async function stopsToSend(
  q: Queryable,
  instanceId: string,
  resendSeconds: number,
  limit: number,
): Promise<Workload[]> {
  const { rows } = await q.query<WorkloadRow>(
    `SELECT * FROM workloads
     WHERE claimed_by = $1::uuid AND stop_reason IS NOT NULL AND state IN ('submitting', 'pending', 'running')
       AND (stop_sent_at IS NULL OR stop_sent_at < now() - make_interval(secs => $2))
     ORDER BY stop_requested_at LIMIT $3`,
    [instanceId, resendSeconds, limit],
  );
  return rows.map(toWorkload);
}

export async function markStopSent(q: Queryable, id: string, attempt: number): Promise<void> {
  await q.query('UPDATE workloads SET stop_sent_at = now() WHERE id = $1::uuid AND attempt = $2', [id, attempt]);
}
