import type { Queryable } from './db.ts';

/**
 * Service instances sharing one database (docs/architecture.md, "Several instances"). Each heartbeats its
 * row; one whose heartbeat is older than the instance timeout, or that said it is stopping, is dead for the
 * others: the leader reconciles the attempts it claimed.
 */
export interface InstanceRecord {
  id: string;
  name: string;
  host: string;
  pid: number;
  version: string;
}

/**
 * Registers an instance. Rows of the same `name` are its predecessors (the same deployment slot, restarted):
 * they are dead now, so their attempts can be reconciled at once instead of after the timeout. `exclusive`:
 * this store can have only one instance (embedded PGlite), so every other row is dead.
 */
export async function registerInstance(q: Queryable, instance: InstanceRecord, exclusive: boolean): Promise<number> {
  await q.query(`INSERT INTO instances (id, name, host, pid, version) VALUES ($1::uuid, $2, $3, $4, $5)`, [
    instance.id,
    instance.name,
    instance.host,
    instance.pid,
    instance.version,
  ]);
  const { rows } = await q.query(
    `UPDATE instances SET stopping = true WHERE id <> $1::uuid AND NOT stopping AND ($2 OR name = $3) RETURNING id`,
    [instance.id, exclusive, instance.name],
  );
  return rows.length;
}

/** Renews the heartbeat; false when the row is gone (a peer pruned it as long dead): register again. */
export async function heartbeatInstance(q: Queryable, id: string): Promise<boolean> {
  const { rows } = await q.query('UPDATE instances SET heartbeat_at = now() WHERE id = $1::uuid RETURNING id', [id]);
  return rows.length > 0;
}

/** The instance stops claiming work: to its peers it is dead from now on. */
export async function markInstanceStopping(q: Queryable, id: string): Promise<void> {
  await q.query('UPDATE instances SET stopping = true WHERE id = $1::uuid', [id]);
}

export interface InstanceView extends InstanceRecord {
  startedAt: string;
  heartbeatAt: string;
  alive: boolean;
}

export async function listInstances(q: Queryable, timeoutSeconds: number): Promise<InstanceView[]> {
  const { rows } = await q.query<{
    id: string;
    name: string;
    host: string;
    pid: number;
    version: string;
    started_at: Date;
    heartbeat_at: Date;
    alive: boolean;
  }>(
    `SELECT *, (NOT stopping AND heartbeat_at > now() - make_interval(secs => $1)) AS alive
     FROM instances ORDER BY started_at`,
    [timeoutSeconds],
  );
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    host: r.host,
    pid: r.pid,
    version: r.version,
    startedAt: new Date(r.started_at).toISOString(),
    heartbeatAt: new Date(r.heartbeat_at).toISOString(),
    alive: r.alive,
  }));
}

/** Rows of instances dead for a day that no attempt names any more. */
export async function pruneInstances(q: Queryable): Promise<number> {
  const { rows } = await q.query(
    `DELETE FROM instances i WHERE heartbeat_at < now() - interval '1 day'
       AND NOT EXISTS (SELECT 1 FROM workloads w WHERE w.claimed_by = i.id
                         AND w.state IN ('submitting', 'pending', 'running'))
     RETURNING id`,
  );
  return rows.length;
}

/** A backend's durable cursor (e.g. an event index to resume a stream from). */
export async function readCursor(q: Queryable, backend: string, name: string): Promise<string | null> {
  const { rows } = await q.query<{ value: string }>(
    'SELECT value FROM backend_cursors WHERE backend = $1 AND name = $2',
    [backend, name],
  );
  return rows[0]?.value ?? null;
}

export async function writeCursor(q: Queryable, backend: string, name: string, value: string): Promise<void> {
  await q.query(
    `INSERT INTO backend_cursors (backend, name, value) VALUES ($1, $2, $3)
     ON CONFLICT (backend, name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
    [backend, name, value],
  );
}
