import { workloadInput } from '../../executor/src/domain/workload.ts';
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
  it('a submission on one instance wakes a worker parked on another (NOTIFY), at once', async () => {
    const databaseUrl = await postgres.createDatabase(`peers_${++databases}`);
    const a = await openTestService({ databaseUrl });
    const b = await openTestService({ databaseUrl });
    try {
      const { worker } = await b.pool.workers.register({
        name: 'peer-worker',
        queues: ['peers'],
        concurrency: 1,
        labels: {},
        runtime: 'process',
        version: 'test',
      });
      const parked = b.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 10_000 });
      await new Promise((resolve) => setTimeout(resolve, 200)); // let it park
      const submittedAt = Date.now();
      await a.submit(workloadInput.parse({ key: 'peer-1', command: ['true'], queue: 'peers' }));
      const result = await parked;
      expect(result.leases.map((l) => l.key)).toEqual(['peer-1']);
      expect(Date.now() - submittedAt).toBeLessThan(1_000);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('concurrent dispatcher claims (SKIP LOCKED) never take the same workload twice', async () => {
    const databaseUrl = await postgres.createDatabase(`claims_${++databases}`);
    const a = await openTestService({ databaseUrl });
    const b = await openTestService({ databaseUrl });
    try {
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
    } finally {
      await a.close();
      await b.close();
    }
  });
});
