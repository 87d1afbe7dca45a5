import type { Db, Queryable } from './db.ts';

export interface FeedEvent {
  seq: number;
  workloadId: string;
  key: string;
  state: string;
  attempt: number;
  reason: string | null;
  exitCode: number | null;
  at: string;
}

/**
 * Numbers committed, not-yet-numbered events in commit order. Only one sequencer runs at a time in the
 * whole cluster (transaction-scoped advisory lock, try-variant so nobody queues behind it): because each
 * run starts after the previous one committed, numbers only ever grow in the order readers can see them,
 * and a client that read up to N never misses an event numbered below N later. Returns how many it
 * numbered.
 *
 * One statement in its own transaction, so one round trip (it runs after nearly every change). Its
 * snapshot is taken before it holds the lock, so it may see an event as unnumbered that the previous run
 * numbered and committed meanwhile; FOR UPDATE then re-reads that row, finds `seq` set, and leaves it.
 */
export async function sequenceEvents(db: Db, batch = 10_000): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `WITH lock AS (SELECT pg_try_advisory_xact_lock(7218412) AS ok),
          next AS (SELECT e.id FROM events e, lock WHERE lock.ok AND e.seq IS NULL ORDER BY e.id LIMIT $1
                   FOR UPDATE OF e),
          numbered AS (UPDATE events e SET seq = nextval('events_seq') FROM next WHERE e.id = next.id
                       AND e.seq IS NULL RETURNING 1)
     SELECT count(*)::int AS n FROM numbered`,
    [batch],
  );
  return rows[0]?.n ?? 0;
}

/** The newest sequence number of the feed (0 when empty): where a reader that wants only what comes next starts. */
export async function feedHead(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ last: number | null }>('SELECT max(seq)::float8 AS last FROM events');
  return Number(rows[0]?.last ?? 0);
}

/** Every numbered event of one workload, oldest first: its attempts and their states (index events_workload). */
export async function eventsOfWorkload(q: Queryable, workloadId: string, limit: number): Promise<FeedEvent[]> {
  const { rows } = await q.query<EventRow>(
    `SELECT seq::float8 AS seq, workload_id, key, state, attempt, reason, exit_code, at FROM events
     WHERE workload_id = $1::uuid AND seq IS NOT NULL ORDER BY seq LIMIT $2`,
    [workloadId, limit],
  );
  return rows.map(toFeedEvent);
}

interface EventRow {
  seq: number;
  workload_id: string;
  key: string;
  state: string;
  attempt: number;
  reason: string | null;
  exit_code: number | null;
  at: Date;
}

function toFeedEvent(r: EventRow): FeedEvent {
  return {
    seq: Number(r.seq),
    workloadId: r.workload_id,
    key: r.key,
    state: r.state,
    attempt: r.attempt,
    reason: r.reason,
    exitCode: r.exit_code,
    at: new Date(r.at).toISOString(),
  };
}

export async function readEvents(
  q: Queryable,
  after: number,
  limit: number,
  workloadId?: string,
): Promise<FeedEvent[]> {
  // One workload's events come through its index (events_workload), not a scan of everyone's since `after`.
  const { rows } = workloadId
    ? await q.query<EventRow>(
        `SELECT seq::float8 AS seq, workload_id, key, state, attempt, reason, exit_code, at FROM events
         WHERE workload_id = $3 AND seq > $1 ORDER BY seq LIMIT $2`,
        [after, limit, workloadId],
      )
    : await q.query<EventRow>(
        `SELECT seq::float8 AS seq, workload_id, key, state, attempt, reason, exit_code, at FROM events
         WHERE seq > $1 ORDER BY seq LIMIT $2`,
        [after, limit],
      );
  return rows.map(toFeedEvent);
}
