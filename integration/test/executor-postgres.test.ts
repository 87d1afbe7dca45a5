import { workloadInput } from '../../executor/src/domain/workload.ts';
import { leasePass } from '../../executor/src/store/lease-pass.ts';
import { claimForSubmit } from '../../executor/src/store/workloads.ts';
import { apiSuite } from '../../executor/test/suites/api.suite.ts';
import { servicePoolSuite } from '../../executor/test/suites/service-pool.suite.ts';
import { servicePushSuite } from '../../executor/test/suites/service-push.suite.ts';
import { openTestService } from '../../executor/test/support/service.ts';
import { type StartedPostgres, startPostgres } from '../src/postgres.ts';

// The same suites as the unit tier (which runs them on embedded PGlite), here on a real PostgreSQL server:
// one store interface, two engines, one behaviour.
let postgres: StartedPostgres;
let databases = 0;
beforeAll(async () => {
  postgres = await startPostgres();
});
afterAll(async () => {
  await postgres?.stop();
});

// A new database per service, unless the caller reopens one (a restart) by passing its URL back.
const onPostgres: typeof openTestService = async (overrides = {}) =>
  openTestService({
    ...overrides,
    databaseUrl: overrides.databaseUrl ?? (await postgres.createDatabase(`suite_${++databases}`)),
  });

describe('on PostgreSQL', () => {
  servicePoolSuite(onPostgres);
  servicePushSuite(onPostgres);
  apiSuite(onPostgres);
});

describe('several service instances on one PostgreSQL', () => {
  type TestService = Awaited<ReturnType<typeof openTestService>>;
  /** Two service instances on one new database, closed after `body`. */
  const onTwoInstances = async (name: string, body: (a: TestService, b: TestService) => Promise<void>) => {
    const databaseUrl = await postgres.createDatabase(`${name}_${++databases}`);
    const a = await openTestService({ databaseUrl });
    const b = await openTestService({ databaseUrl });
    try {
      await body(a, b);
    } finally {
      await a.close();
      await b.close();
    }
  };
  const register = (service: TestService, name: string, queue: string, concurrency: number) =>
    service.pool.workers.register({
      name,
      queues: [queue],
      concurrency,
      labels: {},
      runtime: 'process',
      version: 'test',
    });

  it('a submission on one instance wakes a worker parked on another (NOTIFY), at once', async () => {
    await onTwoInstances('peers', async (a, b) => {
      const { worker } = await register(b, 'peer-worker', 'peers', 1);
      const parked = b.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 10_000 });
      await new Promise((resolve) => setTimeout(resolve, 200)); // let it park
      const submittedAt = Date.now();
      await a.submit(workloadInput.parse({ key: 'peer-1', command: ['true'], queue: 'peers' }));
      const result = await parked;
      expect(result.leases.map((l) => l.key)).toEqual(['peer-1']);
      expect(Date.now() - submittedAt).toBeLessThan(1_000);
    });
  });

  it('concurrent dispatcher claims (SKIP LOCKED) never take the same workload twice', async () => {
    await onTwoInstances('claims', async (a, b) => {
      // Workloads for a push backend no instance runs here, so only the claims below take them.
      const inputs = Array.from({ length: 300 }, (_, i) =>
        workloadInput.parse({ key: `claim-${i}`, command: ['true'], backend: 'batch' }),
      );
      await a.db.query(
        `INSERT INTO workloads (id, key, queue, backend, command, state)
         SELECT gen_random_uuid(), x->>'key', 'default', 'batch', '["true"]'::jsonb, 'queued'
         FROM jsonb_array_elements($1::jsonb) AS x`,
        [JSON.stringify(inputs.map((w) => ({ key: w.key })))],
      );
      const takes = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          claimForSubmit((i % 2 ? a : b).db, 'batch', 40, (i % 2 ? a : b).membership.id),
        ),
      );
      const ids = takes.flat().map((w) => w.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.length).toBe(300);
      expect(takes.flat().every((w) => w.state === 'submitting')).toBe(true);
    });
  });

  it('polls of one worker at once, on two instances, never fill the same slots', async () => {
    await onTwoInstances('slots', async (a, b) => {
      const { worker } = await register(a, 'busy-worker', 'slots', 3);
      await a.submitBatch(
        Array.from({ length: 40 }, (_, i) =>
          workloadInput.parse({ key: `slot-${i}`, command: ['true'], queue: 'slots' }),
        ),
      );
      const polls = await Promise.all(
        Array.from({ length: 16 }, (_, i) => (i % 2 ? a : b).pool.leases.poll(worker.id, { freeSlots: 3, waitMs: 0 })),
      );
      const leased = polls.flatMap((p) => p.leases.map((l) => l.key));
      expect(leased).toHaveLength(3);
      expect(new Set(leased).size).toBe(3);
      const { rows } = await a.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM workloads WHERE worker_id = $1::uuid AND state = 'pending'`,
        [worker.id],
      );
      expect(rows[0]!.n).toBe(3);
    });
  });

  it('a lease pass that waited on another pass of its worker which leased leases nothing and says so', async () => {
    const databaseUrl = await postgres.createDatabase(`stale_${++databases}`);
    const a = await openTestService({ databaseUrl });
    try {
      const { worker } = await register(a, 'stale-worker', 'stale', 2);
      await a.submit(workloadInput.parse({ key: 'stale-1', command: ['true'], queue: 'stale' }));
      // Another pass of the worker, as far as the row is concerned: it holds the worker's row and has leased.
      let release: () => void = () => undefined;
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      let locked: () => void = () => undefined;
      const isLocked = new Promise<void>((resolve) => {
        locked = resolve;
      });
      const other = a.db.tx(async (q) => {
        await q.query('UPDATE workers SET lease_seq = lease_seq + 1 WHERE id = $1::uuid', [worker.id]);
        locked();
        await held;
      });
      await isLocked;
      const waiting = leasePass(a.db, worker.id, true);
      await new Promise((resolve) => setTimeout(resolve, 300)); // the pass is waiting on the row now
      release();
      await other;
      const stale = await waiting;
      expect(stale).toMatchObject({ fresh: false, leases: [] });
      const again = await leasePass(a.db, worker.id, true);
      expect(again?.fresh).toBe(true);
      expect(again?.leases.map((l) => l.key)).toEqual(['stale-1']);
    } finally {
      await a.close();
    }
  });
});
