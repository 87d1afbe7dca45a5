import pg from 'pg';
import { type StartedPostgres, startPostgres } from '../src/postgres.ts';

// Proves the integration tier end to end: a locally built image, started by testcontainers with host
// networking on a free loopback port, answering real queries, and surviving a restart with its data.
describe('PostgreSQL container from images/postgres', () => {
  let postgres: StartedPostgres;
  beforeAll(async () => {
    postgres = await startPostgres();
  });
  afterAll(async () => {
    await postgres?.stop();
  });

  it('answers a real query over loopback', async () => {
    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ version: string; db: string }>(
        'SELECT version() AS version, current_database() AS db',
      );
      expect(rows[0]?.version).toMatch(/^PostgreSQL 15\./);
      expect(rows[0]?.db).toBe('airfleet');
    } finally {
      await client.end();
    }
  });

  it('keeps its data across a restart', async () => {
    const before = new pg.Client({ connectionString: postgres.url });
    await before.connect();
    await before.query('CREATE TABLE kept (id int PRIMARY KEY); INSERT INTO kept VALUES (42)');
    await before.end();

    await postgres.restart();

    const after = new pg.Client({ connectionString: postgres.url });
    await after.connect();
    const { rows } = await after.query<{ id: number }>('SELECT id FROM kept');
    await after.end();
    expect(rows).toEqual([{ id: 42 }]);
  });

  it('rejects a wrong password', async () => {
    const client = new pg.Client({ connectionString: postgres.url.replace(/:pw-[^@]+@/, ':wrong@') });
    await expect(client.connect()).rejects.toThrow(/password authentication failed/);
  });
});
