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
