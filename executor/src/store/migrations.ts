import type { Db } from './db.ts';

/**
 * Versioned schema migrations, applied in order and recorded in `airfleet_migrations`. Never edit a shipped
 * migration: add the next one. A transaction-scoped advisory lock makes concurrent service start-ups apply
 * each migration exactly once.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'workloads, events, logs, workers, tokens',
    sql: `
-- Position in the queue: submission order, renewed when an attempt is requeued. A sequence rather than a
-- timestamp because a batch inserted in one statement shares one now().
CREATE SEQUENCE workloads_enqueue_seq;
CREATE TABLE workloads (
  id                uuid PRIMARY KEY,
  enqueue_seq       bigint NOT NULL DEFAULT nextval('workloads_enqueue_seq'),
  key               text NOT NULL UNIQUE,
  queue             text NOT NULL,
  backend           text NOT NULL,
  command           jsonb NOT NULL,
  image             text,
  env               jsonb NOT NULL DEFAULT '{}',
  pool_slots        int NOT NULL DEFAULT 1,
  priority_weight   int NOT NULL DEFAULT 1,
  resources         jsonb NOT NULL DEFAULT '{}',
  exec_config       jsonb NOT NULL DEFAULT '{}',
  timeouts          jsonb NOT NULL DEFAULT '{}',
  state             text NOT NULL,
  attempt           int NOT NULL DEFAULT 1,
  infra_retries     int NOT NULL DEFAULT 0,
  max_infra_retries int NOT NULL DEFAULT 3,
  worker_id         uuid,
  backend_ref       text,
  reason            text,
  exit_code         int,
  message           text,
  cancel_requested  boolean NOT NULL DEFAULT false,
  -- Deadlines live in the database, not in memory, so a restart does not forget them.
  pending_deadline  timestamptz,
  run_deadline      timestamptz,
  created_at        timestamptz NOT NULL DEFAULT now(),
  queued_at         timestamptz NOT NULL DEFAULT now(),
  leased_at         timestamptz,
  started_at        timestamptz,
  finished_at       timestamptz,
  updated_at        timestamptz NOT NULL DEFAULT now()
);
-- The dispatch path only ever reads queued rows: a partial index keeps it as fast with 100,000 finished
-- rows as with none.
CREATE INDEX workloads_dispatch ON workloads (backend, queue, priority_weight DESC, enqueue_seq) WHERE state = 'queued';
CREATE INDEX workloads_live ON workloads (state, queue) WHERE state IN ('queued', 'submitting', 'pending', 'running');
CREATE INDEX workloads_by_worker ON workloads (worker_id) WHERE state IN ('pending', 'running');
CREATE INDEX workloads_pending_deadline ON workloads (pending_deadline) WHERE state IN ('queued', 'pending', 'submitting') AND pending_deadline IS NOT NULL;
CREATE INDEX workloads_created ON workloads (created_at DESC, id);

-- The change feed. Rows are written in the same transaction as the state change, with seq NULL; the
-- sequencer (one at a time, under an advisory lock) numbers committed rows in commit order, so a reader
-- that has seen seq N never later finds a new row below N.
CREATE SEQUENCE events_seq;
CREATE TABLE events (
  id          bigserial PRIMARY KEY,
  seq         bigint UNIQUE,
  workload_id uuid NOT NULL,
  key         text NOT NULL,
  state       text NOT NULL,
  attempt     int NOT NULL,
  reason      text,
  exit_code   int,
  at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_unsequenced ON events (id) WHERE seq IS NULL;

CREATE TABLE log_chunks (
  workload_id uuid NOT NULL,
  attempt     int NOT NULL,
  stream      text NOT NULL,
  "offset"    bigint NOT NULL,
  data        bytea NOT NULL,
  PRIMARY KEY (workload_id, attempt, stream, "offset")
);

CREATE TABLE workers (
  id                  uuid PRIMARY KEY,
  name                text NOT NULL UNIQUE,
  queues              text[] NOT NULL,
  concurrency         int NOT NULL,
  labels              jsonb NOT NULL DEFAULT '{}',
  token_hash          text NOT NULL,
  state               text NOT NULL,
  maintenance         boolean NOT NULL DEFAULT false,
  maintenance_comment text,
  draining            boolean NOT NULL DEFAULT false,
  runtime             text,
  version             text,
  metrics             jsonb NOT NULL DEFAULT '{}',
  registered_at       timestamptz NOT NULL DEFAULT now(),
  last_heartbeat      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
  id           text PRIMARY KEY,
  name         text NOT NULL,
  hash         text NOT NULL,
  scopes       text[] NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz
);
`,
  },
  {
    version: 2,
    name: 'dispatch order for push backends',
    sql: `
-- The dispatcher claims a push backend's work across all its queues in priority-then-age order; without an
-- index in that order every claim would sort the backend's whole backlog.
CREATE INDEX workloads_push_dispatch ON workloads (backend, priority_weight DESC, enqueue_seq)
  WHERE state = 'queued' AND backend <> 'pool';
`,
  },
  {
    version: 3,
    name: 'instances, claims, stop requests, backend cursors, sweep indexes',
    sql: `
-- Service instances on this database (docs/architecture.md, "Several instances"). An instance heartbeats its
-- row; one whose heartbeat is older than the instance timeout is dead, and the leader reconciles the
-- attempts it claimed.
CREATE TABLE instances (
  id            uuid PRIMARY KEY,
  name          text NOT NULL,
  host          text NOT NULL,
  pid           int NOT NULL,
  version       text NOT NULL,
  started_at    timestamptz NOT NULL DEFAULT now(),
  heartbeat_at  timestamptz NOT NULL DEFAULT now(),
  stopping      boolean NOT NULL DEFAULT false
);
CREATE INDEX instances_name ON instances (name);

-- Who owns a push attempt (the instance that claimed it, or adopted it from a dead one), and since when.
ALTER TABLE workloads ADD COLUMN claimed_by uuid;
ALTER TABLE workloads ADD COLUMN claimed_at timestamptz;
-- A stop the service asked for (cancel, pending timeout, run timeout): the reason it will record once the
-- backend or worker confirms the attempt ended. Kept until then, and re-sent until confirmed.
ALTER TABLE workloads ADD COLUMN stop_reason text;
ALTER TABLE workloads ADD COLUMN stop_message text;
ALTER TABLE workloads ADD COLUMN stop_requested_at timestamptz;
ALTER TABLE workloads ADD COLUMN stop_sent_at timestamptz;

CREATE INDEX workloads_push_in_flight ON workloads (backend, claimed_by)
  WHERE state IN ('submitting', 'pending', 'running') AND backend <> 'pool';
CREATE INDEX workloads_stops ON workloads (claimed_by, stop_sent_at)
  WHERE stop_reason IS NOT NULL AND state IN ('submitting', 'pending', 'running');
CREATE INDEX workloads_run_deadline ON workloads (run_deadline) WHERE state = 'running' AND run_deadline IS NOT NULL;
CREATE INDEX workloads_retention ON workloads (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX events_at ON events (at);
CREATE INDEX events_workload ON events (workload_id);

-- Where a backend's watcher resumes (e.g. the Nomad event index), shared by the instances.
CREATE TABLE backend_cursors (
  backend     text NOT NULL,
  name        text NOT NULL,
  value       text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (backend, name)
);
`,
  },
  {
    version: 4,
    name: 'write-only secrets, enrollment tokens limited to queues',
    sql: `
-- secretEnv, encrypted (service/secrets.ts); the digest tells two submissions apart without revealing them.
ALTER TABLE workloads ADD COLUMN secret_env bytea;
ALTER TABLE workloads ADD COLUMN secret_digest text NOT NULL DEFAULT '';
-- An enrollment token may be limited to queues: a worker it registers may serve only those. NULL: any.
ALTER TABLE api_tokens ADD COLUMN queues text[];
`,
  },
  {
    version: 5,
    name: 'lease passes in one statement',
    sql: `
-- Bumped by each lease pass that leases (store/lease-pass.ts): a pass that finds it changed since its
-- snapshot knows another pass of the worker leased meanwhile, and makes itself again.
ALTER TABLE workers ADD COLUMN lease_seq bigint NOT NULL DEFAULT 0;
`,
  },
];

export async function migrate(db: Db): Promise<number[]> {
  return db.tx(async (q) => {
    await q.query('SELECT pg_advisory_xact_lock(7218411)');
    await q.query(
      'CREATE TABLE IF NOT EXISTS airfleet_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const { rows } = await q.query<{ version: number }>('SELECT version FROM airfleet_migrations');
    const done = new Set(rows.map((r) => r.version));
    const applied: number[] = [];
    for (const migration of MIGRATIONS) {
      if (done.has(migration.version)) continue;
      await q.exec(migration.sql);
      await q.query('INSERT INTO airfleet_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      applied.push(migration.version);
    }
    return applied;
  });
}
