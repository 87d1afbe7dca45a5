import pino from 'pino';
import { buildApi } from '../../src/api/server.ts';
import { scaleInComment } from '../../src/autoscaler/autoscaler.ts';
import type { PoolDriver } from '../../src/autoscaler/drivers/driver.ts';
import { parseServiceConfig } from '../../src/config.ts';
import { workloadInput } from '../../src/domain/workload.ts';
import { ExecutorService } from '../../src/service/executor-service.ts';
import { openDatabase } from '../../src/store/open.ts';
import type { Worker } from '../../src/store/workers.ts';

/**
 * The autoscaler's loop over a real service (PGlite) and real registered workers, with a driver that
 * records what it is told (the real drivers run against Docker Swarm in integration/test/autoscale-swarm.test.ts).
 */
class RecordingDriver implements PoolDriver {
  readonly kind = 'recording';
  target = 1;
  removed: string[][] = [];
  scaled: number[] = [];
  private readonly leave: (w: Worker) => Promise<void>;
  constructor(leave: (w: Worker) => Promise<void>) {
    this.leave = leave;
  }
  async observe() {
    return { target: this.target, running: this.target };
  }
  async scaleTo(n: number) {
    this.scaled.push(n);
    this.target = n;
  }
  async remove(workers: readonly Worker[]) {
    this.removed.push(workers.map((w) => w.name));
    for (const w of workers) await this.leave(w);
    this.target -= workers.length;
  }
}

const TOKEN = 'aft_autoscaletest01_testsecret-testsecret-testsecret';

describe('autoscaler loop', () => {
  let service: ExecutorService;
  let driver: RecordingDriver;
  let clock = 1_000_000;
  const realNow = Date.now;

  beforeAll(async () => {
    const config = parseServiceConfig({
      dataDir: 'memory://',
      logLevel: 'silent',
      heartbeatIntervalMs: 60_000,
      heartbeatTimeoutMs: 600_000,
      autoscaleIntervalMs: 600_000, // passes are driven by the test
      bootstrapTokens: [{ name: 'admin', token: TOKEN, scopes: ['admin'] }],
      pools: [
        {
          name: 'p',
          queues: ['q'],
          slotsPerWorker: 1,
          minWorkers: 1,
          maxWorkers: 4,
          scaleOutCooldownSeconds: 0,
          scaleInCooldownSeconds: 0,
          hysteresisSlots: 0,
          drainTimeoutSeconds: 30,
          driver: { kind: 'swarm', service: 'unused' },
        },
      ],
    });
    const db = await openDatabase(config, pino({ level: 'silent' }));
    driver = new RecordingDriver((w) => service.pool.workers.deregister(w.id));
    service = await ExecutorService.attach(db, config, pino({ level: 'silent' }), {
      poolDrivers: new Map([['p', driver]]),
    });
    // The drain deadline is read from the autoscaler's clock: let the test move it.
    Date.now = () => clock;
  });
  afterAll(async () => {
    Date.now = realNow;
    const db = service.db;
    await service.close();
    await db.close();
  });

  const register = (name: string) =>
    service.pool.workers.register({
      name,
      queues: ['q'],
      concurrency: 1,
      labels: { 'airfleet.pool': 'p' },
      runtime: 'process',
      version: 'test',
    });

  it('scales out to the backlog, then scales in only idle workers, and removes exactly those once drained', async () => {
    await service.submitBatch(
      ['a', 'b', 'c'].map((key) => workloadInput.parse({ key, command: ['true'], queue: 'q' })),
    );
    await service.autoscale();
    expect(driver.scaled).toEqual([3]);
    const [w1, w2, w3] = [await register('w1'), await register('w2'), await register('w3')];
    // w1 takes one task and runs it; the other two tasks are cancelled: the backlog falls to one slot.
    const { leases } = await service.pool.leases.poll(w1.worker.id, { freeSlots: 1, waitMs: 0 });
    expect(leases).toHaveLength(1);
    await service.pool.leases.report(w1.worker.id, { workloadId: leases[0]!.id, attempt: 1, state: 'running' });
    for (const key of ['a', 'b', 'c']) if (key !== leases[0]!.key) await service.cancel(key);

    await service.autoscale();
    const workers = await service.pool.workers.list();
    const inMaintenance = workers.filter((w) => w.maintenance).map((w) => w.name);
    expect(inMaintenance.sort()).toEqual([w2.worker.name, w3.worker.name]);
    expect(workers.find((w) => w.name === 'w2')!.maintenanceComment).toBe(scaleInComment('p'));
    const pools = await service.pools();
    expect(pools[0]!.status).toMatchObject({ desired: 1, queuedSlots: 0, runningSlots: 1, scalingIn: ['w2', 'w3'] });

    await service.autoscale();
    expect(driver.removed).toEqual([['w2', 'w3']]);
    expect(driver.target).toBe(1);
    // The dashboard's chart: every change of desired or actual is a sample, oldest first.
    const history = (await service.pools())[0]!.history;
    expect(history.map((h) => h.desired)).toEqual([3, 1, 1].slice(0, history.length));
    expect(history.length).toBeGreaterThanOrEqual(2);
    expect(history.every((h, i) => i === 0 || Date.parse(h.at) >= Date.parse(history[i - 1]!.at))).toBe(true);
    // The busy worker and its task are untouched.
    expect((await service.getWorkload(leases[0]!.id)).state).toBe('running');
    expect((await service.pool.workers.get('w1')).maintenance).toBe(false);
    await service.pool.leases.report(w1.worker.id, {
      workloadId: leases[0]!.id,
      attempt: 1,
      state: 'succeeded',
      exitCode: 0,
    });
  });

  it('a chosen worker that does not drain in time is put back to work, not removed', async () => {
    const w4 = await register('w4');
    driver.target = 2;
    await service.submit(workloadInput.parse({ key: 'late', command: ['true'], queue: 'q' }));
    const { leases } = await service.pool.leases.poll(w4.worker.id, { freeSlots: 1, waitMs: 0 });
    await service.pool.leases.report(w4.worker.id, { workloadId: leases[0]!.id, attempt: 1, state: 'running' });
    // The race a scale-in can lose: the worker was idle when chosen, and took a lease just before maintenance.
    await service.pool.workers.setMaintenance('w4', true, scaleInComment('p'));
    await service.autoscale();
    expect(driver.removed).toHaveLength(1); // nothing more removed: w4 is busy
    expect((await service.pool.workers.get('w4')).maintenance).toBe(true);
    clock += 31_000;
    await service.autoscale();
    expect(driver.removed).toHaveLength(1);
    expect((await service.pool.workers.get('w4')).maintenance).toBe(false);
    expect((await service.getWorkload('late')).state).toBe('running');
  });

  it('GET /v1/pools (authenticated, in the OpenAPI document), `airfleet pools` data and the pool gauges', async () => {
    const app = await buildApi(service, pino({ level: 'silent' }));
    try {
      expect((await app.inject({ method: 'GET', url: '/v1/pools' })).statusCode).toBe(401);
      const auth = { authorization: `Bearer ${TOKEN}` };
      const reply = await app.inject({ method: 'GET', url: '/v1/pools', headers: auth });
      expect(reply.statusCode).toBe(200);
      const pool = reply.json().pools[0];
      expect(pool).toMatchObject({ name: 'p', queues: ['q'], driver: 'swarm', minWorkers: 1, maxWorkers: 4 });
      expect(pool.status.lastDecision.action).toMatch(/hold|scale_in|scale_out/);
      expect((await app.inject({ method: 'GET', url: '/v1/pools?x=1', headers: auth })).statusCode).toBe(400);
      const openapi = (await app.inject({ method: 'GET', url: '/openapi.json', headers: auth })).json();
      expect(openapi.paths['/v1/pools'].get.security).toBeUndefined(); // the document-wide bearer applies
      const metrics = (await app.inject({ method: 'GET', url: '/metrics', headers: auth })).body;
      expect(metrics).toMatch(/airfleet_pool_desired_workers\{pool="p"\} 1/);
      expect(metrics).toMatch(/airfleet_pool_backlog_slots\{pool="p",kind="running"\} 1/);
    } finally {
      await app.close();
    }
  });
});
