import type { Workload } from '../domain/workload.ts';
import type { Queryable } from './db.ts';
import { fromStates, toState } from './transition-sql.ts';
import { toWorker, type Worker, type WorkerRow } from './workers.ts';
import { type WithSealed, type WorkloadRow, withSealed } from './workloads.ts';

/**
 * A worker's lease pass in one statement (no transaction around it): its row locked, what it holds counted,
 * queued work locked with SKIP LOCKED, chosen to fit its free slots and marked pending with its events. One
 * round trip instead of the seven of a transaction of lock, count, candidates, lease and the rest, which
 * were most of the service's and the database's work per task at hundreds of tasks a second.
 *
 * Two passes of one worker never fill the same slots: in one statement the count is read in the statement's
 * snapshot, which a pass of the same worker committed after it began is not in (a lock taken inside the
 * statement does not refresh it). Each pass that leases bumps the worker's `lease_seq`, and the worker row
 * locked here is its newest version (READ COMMITTED re-reads a row it had to wait for): when that `lease_seq`
 * differs from the one in the snapshot, another pass leased meanwhile, so this one leases nothing and says
 * `fresh: false`, to be made again in a new snapshot.
 *
 * The choice (`pick`): candidates in lease order (priority, then age), each taken when it fits the slots
 * still free, passed over (left queued) when it does not, so smaller work behind a big task still runs.
 */
const LEASE_PASS = `WITH RECURSIVE snap AS (SELECT lease_seq FROM workers WHERE id = $1::uuid),
k AS MATERIALIZED (SELECT k.* FROM workers k WHERE k.id = $1::uuid FOR UPDATE),
held AS (
  SELECT coalesce(sum(w.pool_slots), 0)::int AS used_slots, count(*)::int AS running_workloads,
         coalesce(bool_or(w.stop_reason IS NOT NULL), false) AS has_stop
  FROM workloads w WHERE w.worker_id = $1::uuid AND w.state IN ('pending', 'running')
),
me AS MATERIALIZED (
  SELECT k.*, held.used_slots, held.running_workloads, held.has_stop,
         k.lease_seq = (SELECT lease_seq FROM snap) AS fresh,
         greatest(0, k.concurrency - held.used_slots) AS free,
         k.state NOT IN ('lost', 'offline') AND NOT k.maintenance AND NOT k.draining AND $2::boolean AS accepting
  FROM k, held
),
-- Queue by queue in the dispatch index's own order, then merged: over queue = ANY(...) the planner fetched
-- and sorted every queued row of the worker's queues (a backlog of thousands made each pass slower).
cand AS MATERIALIZED (
  SELECT c.*, row_number() OVER (ORDER BY c.priority_weight DESC, c.enqueue_seq) AS rn
  FROM me, unnest(me.queues) AS qn(name),
  LATERAL (SELECT w.id, w.queue, w.pool_slots, w.priority_weight, w.enqueue_seq FROM workloads w
           WHERE w.backend = 'pool' AND w.queue = qn.name AND w.state = 'queued' AND w.pool_slots <= me.free
           ORDER BY w.priority_weight DESC, w.enqueue_seq LIMIT (SELECT free FROM me)
           FOR UPDATE SKIP LOCKED) c
  WHERE me.fresh AND me.accepting AND me.free > 0
  ORDER BY c.priority_weight DESC, c.enqueue_seq
  LIMIT (SELECT free FROM me)
),
pick (rn, room, take) AS (
  SELECT 0::bigint, (SELECT free FROM me), false
  UNION ALL
  SELECT c.rn, CASE WHEN c.pool_slots <= p.room THEN p.room - c.pool_slots ELSE p.room END, c.pool_slots <= p.room
  FROM pick p JOIN cand c ON c.rn = p.rn + 1
),
upd AS (
  UPDATE workloads w SET state = ${toState('lease')}, worker_id = $1::uuid, leased_at = now(), updated_at = now()
  FROM cand c JOIN pick p ON p.rn = c.rn AND p.take
  WHERE w.id = c.id AND ${fromStates('lease', 'w.state')}
  RETURNING w.*, c.rn
),
bump AS (UPDATE workers SET lease_seq = lease_seq + 1 WHERE id = $1::uuid AND EXISTS (SELECT 1 FROM upd)),
ev AS (INSERT INTO events (workload_id, key, state, attempt, reason, exit_code)
       SELECT id, key, state, attempt, reason, exit_code FROM upd)
SELECT (SELECT row_to_json(me) FROM me) AS pass_worker,
       (SELECT count(*)::int FROM cand) AS pass_candidates,
       (SELECT coalesce(json_object_agg(x.queue, x.n), '{}') FROM
          (SELECT c.queue, count(*)::int AS n FROM cand c JOIN pick p ON p.rn = c.rn AND NOT p.take GROUP BY c.queue) x)
         AS pass_left,
       -- Queued work on its queues bigger than its free slots but within its concurrency: asked only when
       -- nothing else says whether freed slots should wake it (see LeaseProtocol.pass).
       (SELECT CASE WHEN me.fresh AND me.accepting AND me.free > 0 AND me.free < me.concurrency
                     AND (SELECT count(*) FROM cand) = (SELECT count(*) FROM upd)
                     AND (SELECT coalesce(sum(pool_slots), 0) FROM upd) < me.free
               THEN EXISTS (SELECT 1 FROM unnest(me.queues) AS qn(name),
                            LATERAL (SELECT 1 FROM workloads w WHERE w.backend = 'pool' AND w.queue = qn.name
                                       AND w.state = 'queued' AND w.pool_slots > me.free
                                       AND w.pool_slots <= me.concurrency
                                     ORDER BY w.priority_weight DESC, w.enqueue_seq LIMIT 1) x)
               ELSE false END FROM me) AS pass_bigger,
       -- When it locked as many candidates as it had free slots: whether queued work is there beyond them
       -- (work other passes have locked counts: they may leave it), so that freed slots and a hand-on are
       -- wasted only when there may be something to find. When it had no free slot (it locked nothing):
       -- whether work it could take once slots free is queued.
       (SELECT CASE WHEN me.fresh AND me.accepting AND (me.free = 0 OR (SELECT count(*) FROM cand) >= me.free)
               THEN EXISTS (SELECT 1 FROM unnest(me.queues) AS qn(name),
                            LATERAL (SELECT 1 FROM workloads w WHERE w.backend = 'pool' AND w.queue = qn.name
                                       AND w.state = 'queued' AND w.id NOT IN (SELECT c.id FROM cand c)
                                       AND (me.free > 0 OR w.pool_slots <= me.concurrency)
                                     ORDER BY w.priority_weight DESC, w.enqueue_seq LIMIT 1) x)
               ELSE false END FROM me) AS pass_more,
       u.*
FROM (SELECT 1) one LEFT JOIN upd u ON true
ORDER BY u.rn`;

export interface LeasePassResult {
  worker: Worker & { hasStop: boolean };
  /** False: another pass of this worker leased after this one's snapshot; nothing was leased, pass again. */
  fresh: boolean;
  /** The worker's free slots when the pass began. */
  free: number;
  /** Candidates it locked (at most `free`). */
  candidates: number;
  /** Candidates it locked and left queued (they did not fit what was left), by queue. */
  left: Map<string, number>;
  /** Queued work bigger than its free slots but within its concurrency (asked only when that decides). */
  bigger: boolean;
  /**
   * It locked as many candidates as it had free slots, and queued work is there beyond them; or it had no
   * free slot, and work it could take once slots free is queued.
   */
  more: boolean;
  /** What it leased, in lease order, secrets still sealed. */
  leases: Array<WithSealed<Workload>>;
}

type PassRow = WorkloadRow & {
  pass_worker: (WorkerRow & { has_stop: boolean; fresh: boolean; free: number }) | null;
  pass_candidates: number;
  pass_left: Record<string, number>;
  pass_bigger: boolean;
  pass_more: boolean;
};

/** One lease pass for `workerId`; `accepting` false leases nothing (this instance is stopping). Null: no such worker. */
export async function leasePass(q: Queryable, workerId: string, accepting: boolean): Promise<LeasePassResult | null> {
  const { rows } = await q.query<PassRow>(LEASE_PASS, [workerId, accepting]);
  const first = rows[0];
  const w = first?.pass_worker;
  if (!first || !w) return null;
  return {
    worker: { ...toWorker(w), hasStop: w.has_stop },
    fresh: w.fresh,
    free: w.free,
    candidates: first.pass_candidates,
    left: new Map(Object.entries(first.pass_left)),
    bigger: first.pass_bigger,
    more: first.pass_more,
    leases: rows.filter((r) => r.id !== null).map(withSealed),
  };
}
