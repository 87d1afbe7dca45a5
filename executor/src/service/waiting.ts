import type { Workload } from '../domain/workload.ts';
import type { Queryable } from '../store/db.ts';

/**
 * Why a queued workload is still waiting, in words a user can act on: no worker serves its queue, none is
 * big enough for its pool slots, or they are all busy. Null when there is nothing to say (push backends
 * take work as fast as their capacity allows).
 */
export async function waitingReason(
  q: Queryable,
  w: Pick<Workload, 'queue' | 'backend' | 'poolSlots'>,
): Promise<string | null> {
  if (w.backend !== 'pool') return null;
  const { rows } = await q.query<{ workers: number; largest: number | null; accepting: number }>(
    `SELECT count(*)::int AS workers, max(concurrency)::int AS largest,
            count(*) FILTER (WHERE NOT maintenance AND NOT draining)::int AS accepting
     FROM workers WHERE $1 = ANY(queues) AND state NOT IN ('lost', 'offline')`,
    [w.queue],
  );
  const { workers, largest, accepting } = rows[0] ?? { workers: 0, largest: null, accepting: 0 };
  if (workers === 0) return `waiting: no worker serves queue ${w.queue}`;
  if ((largest ?? 0) < w.poolSlots) {
    return `waiting: no worker on queue ${w.queue} has ${w.poolSlots} slots (the largest has ${largest})`;
  }
  if (accepting === 0) return `waiting: every worker on queue ${w.queue} is in maintenance or draining`;
  return `waiting: the workers on queue ${w.queue} were busy`;
}
