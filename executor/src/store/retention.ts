import type { Queryable } from './db.ts';

/**
 * Deletes finished workloads older than the retention, with their log chunks and change-feed entries, at most
 * `batch` workloads per call (the caller loops while a call removed a full batch, so a large backlog of old
 * rows goes in short transactions rather than one long one that holds locks). SKIP LOCKED leaves rows a
 * peer is deleting alone.
 */
export async function pruneFinished(q: Queryable, retentionSeconds: number, batch: number): Promise<number> {
  const { rows } = await q.query<{ n: number }>(
    `WITH gone AS (
       SELECT id FROM workloads WHERE finished_at < now() - make_interval(secs => $1)
       ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED
     ),
     logs AS (DELETE FROM log_chunks l USING gone WHERE l.workload_id = gone.id),
     feed AS (DELETE FROM events e USING gone WHERE e.workload_id = gone.id AND e.seq IS NOT NULL),
     w AS (DELETE FROM workloads x USING gone WHERE x.id = gone.id RETURNING 1)
     SELECT count(*)::int AS n FROM w`,
    [retentionSeconds, batch],
  );
  return rows[0]?.n ?? 0;
}

/** Change-feed entries older than the retention, of any workload (a live one's history too), in batches. */
export async function pruneEvents(q: Queryable, retentionSeconds: number, batch: number): Promise<number> {
  const { rows } = await q.query<{ n: number }>(
    `WITH gone AS (DELETE FROM events WHERE id IN (
       SELECT id FROM events WHERE at < now() - make_interval(secs => $1) AND seq IS NOT NULL ORDER BY at LIMIT $2)
     RETURNING 1)
     SELECT count(*)::int AS n FROM gone`,
    [retentionSeconds, batch],
  );
  return rows[0]?.n ?? 0;
}
