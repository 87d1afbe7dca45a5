import { workloadInput } from '../../src/domain/workload.ts';
import type { ExecutorService } from '../../src/service/executor-service.ts';
import { type OpenService, waitUntil } from '../support/service.ts';

/** Runs against whatever store `openService` opens: PGlite in the unit tier, PostgreSQL in integration. */
export function servicePoolSuite(openService: OpenService): void {
  describe('executor service with pull workers', () => {
    // One database for the file (starting PGlite costs ~1 s); each test uses its own queue, keys and worker
    // names so tests cannot see each other's work.
    let service: ExecutorService;
    let n = 0;
    let queue = 'default';
    beforeAll(async () => {
      // The heartbeat timeout is short enough for the loss test to be quick, and long enough that the other
      // tests (which never heartbeat) keep their workers on a CI machine busy with other suites.
      service = await openService({ heartbeatIntervalMs: 500, heartbeatTimeoutMs: 2_000, leaseAckTimeoutMs: 200 });
    });
    afterAll(async () => {
      await service.close();
    });
    beforeEach(() => {
      n++;
      queue = `queue-${n}`;
    });

    const k = (key: string) => `${key}-${n}`;
    const input = (over: Record<string, unknown>) =>
      workloadInput.parse({ command: ['true'], queue, ...over, key: k(String(over.key)) });
    const register = (name: string, queues: string[], concurrency: number) =>
      service.pool.workers.register({
        name: k(name),
        queues: queues.map((q) => (q === 'default' ? queue : q)),
        concurrency,
        labels: {},
        runtime: 'process',
        version: 'test',
      });

    it('submitting the same key twice returns the same workload', async () => {
      const a = await service.submit(input({ key: 'k1' }));
      const b = await service.submit(input({ key: 'k1', command: ['other'] }));
      expect(a.created).toBe(true);
      expect(b.created).toBe(false);
      expect(b.workload.id).toBe(a.workload.id);
      expect(b.workload.command).toEqual(['true']);
    });

    it('leases by priority then age, within the worker free slots', async () => {
      await service.submitBatch([
        input({ key: 'low', priorityWeight: 1 }),
        input({ key: 'big', priorityWeight: 50, poolSlots: 3 }),
        input({ key: 'high', priorityWeight: 10 }),
        input({ key: 'low2', priorityWeight: 1 }),
      ]);
      const { worker } = await register('w1', ['default'], 2);
      const result = await service.pool.leases.poll(worker.id, { freeSlots: 2, waitMs: 0 });
      // "big" needs 3 slots and never fits a worker of concurrency 2; the next two by priority then age do.
      expect(result.leases.map((l) => l.key)).toEqual([k('high'), k('low')]);
      const again = await service.pool.leases.poll(worker.id, { freeSlots: 2, waitMs: 0 });
      expect(again.leases).toEqual([]); // server-side slot accounting: both slots are taken
    });

    it('a parked poll is woken by a submission', async () => {
      const { worker } = await register('w1', ['default'], 1);
      const poll = service.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 5_000 });
      await new Promise((r) => setTimeout(r, 50));
      const started = Date.now();
      await service.submit(input({ key: 'wake' }));
      const result = await poll;
      expect(result.leases.map((l) => l.key)).toEqual([k('wake')]);
      expect(Date.now() - started).toBeLessThan(1_000);
    });

    it('a poll right after a lease takes work submitted meanwhile at once, and later work wakes it', async () => {
      const { worker } = await register('w1', ['default'], 4);
      await service.submit(input({ key: 'first' }));
      const first = await service.pool.leases.poll(worker.id, { freeSlots: 4, waitMs: 5_000 });
      expect(first.leases.map((l) => l.key)).toEqual([k('first')]);
      // Submitted while the worker was between polls, with no poll parked to take it.
      await service.submit(input({ key: 'between' }));
      let started = Date.now();
      const second = await service.pool.leases.poll(worker.id, { freeSlots: 3, waitMs: 5_000 });
      expect(second.leases.map((l) => l.key)).toEqual([k('between')]);
      expect(Date.now() - started).toBeLessThan(1_000);
      // Nothing new: this poll parks (without a pass of its own) and a submission wakes it.
      const third = service.pool.leases.poll(worker.id, { freeSlots: 2, waitMs: 5_000 });
      await new Promise((r) => setTimeout(r, 50));
      started = Date.now();
      await service.submit(input({ key: 'later' }));
      expect((await third).leases.map((l) => l.key)).toEqual([k('later')]);
      expect(Date.now() - started).toBeLessThan(1_000);
    });

    it('runs an attempt through running to succeeded and records the feed in order', async () => {
      const { workload } = await service.submit(input({ key: 'ok' }));
      const { worker } = await register('w1', ['default'], 1);
      await service.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 0 });
      await service.pool.leases.report(worker.id, { workloadId: workload.id, attempt: 1, state: 'running' });
      const done = await service.pool.leases.report(worker.id, {
        workloadId: workload.id,
        attempt: 1,
        state: 'succeeded',
        exitCode: 0,
      });
      expect(done.state).toBe('succeeded');
      // A retried report (its first reply lost) is accepted and changes nothing.
      await expect(
        service.pool.leases.report(worker.id, { workloadId: workload.id, attempt: 1, state: 'succeeded' }),
      ).resolves.toMatchObject({
        state: 'succeeded',
      });
      // The feed numbers events just after they commit: read until the last one has arrived.
      let events = await service.readFeed(0, 1000, 2_000);
      for (let i = 0; i < 20 && !events.some((e) => e.key === k('ok') && e.state === 'succeeded'); i++) {
        await new Promise((r) => setTimeout(r, 50));
        events = await service.readFeed(0, 1000, 0);
      }
      expect(events.filter((e) => e.key === k('ok')).map((e) => e.state)).toEqual([
        'queued',
        'pending',
        'running',
        'succeeded',
      ]);
      expect(events.map((e) => e.seq)).toEqual([...events.map((e) => e.seq)].sort((x, y) => x - y));
    });

    it('fences reports about an older attempt', async () => {
      const { workload } = await service.submit(input({ key: 'fenced' }));
      const { worker } = await register('w1', ['default'], 1);
      await service.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 0 });
      // Fails before start: retried by the service as attempt 2.
      const retried = await service.pool.leases.report(worker.id, {
        workloadId: workload.id,
        attempt: 1,
        state: 'failed',
        reason: 'image_pull',
        started: false,
      });
      expect(retried).toMatchObject({ state: 'queued', attempt: 2, infraRetries: 1 });
      await expect(
        service.pool.leases.report(worker.id, { workloadId: workload.id, attempt: 1, state: 'running' }),
      ).rejects.toThrow(/stale/);
    });

    it('a task that started and failed is never retried by the service', async () => {
      const { workload } = await service.submit(input({ key: 'task-error' }));
      const { worker } = await register('w1', ['default'], 1);
      await service.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 0 });
      await service.pool.leases.report(worker.id, { workloadId: workload.id, attempt: 1, state: 'running' });
      const failed = await service.pool.leases.report(worker.id, {
        workloadId: workload.id,
        attempt: 1,
        state: 'failed',
        reason: 'task_error',
        exitCode: 3,
      });
      expect(failed).toMatchObject({ state: 'failed', reason: 'task_error', exitCode: 3, attempt: 1 });
    });

    it('a silent worker is lost: running tasks fail as lost, unstarted leases are requeued', async () => {
      await service.submitBatch([input({ key: 'started' }), input({ key: 'leased' })]);
      const registeredAt = Date.now();
      const { worker } = await register('w1', ['default'], 2);
      const { leases } = await service.pool.leases.poll(worker.id, { freeSlots: 2, waitMs: 0 });
      const started = leases.find((l) => l.key === k('started'))!;
      await service.pool.leases.report(worker.id, { workloadId: started.id, attempt: 1, state: 'running' });
      await waitUntil(async () => (await service.pool.workers.get(k('w1'))).state === 'lost', 10_000);
      expect(Date.now() - registeredAt).toBeGreaterThanOrEqual(2_000); // not before its timeout
      expect(await service.getWorkload(k('started'))).toMatchObject({ state: 'failed', reason: 'lost' });
      expect(await service.getWorkload(k('leased'))).toMatchObject({ state: 'queued', attempt: 2 });
      await expect(service.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 0 })).rejects.toThrow(/register again/);
    });

    it('maintenance stops new leases and shows pending until the worker drains', async () => {
      const { worker } = await register('w1', ['default'], 2);
      const { workload } = await service.submit(input({ key: 'm1' }));
      await service.pool.leases.poll(worker.id, { freeSlots: 2, waitMs: 0 });
      await service.pool.workers.setMaintenance(k('w1'), true, 'kernel upgrade');
      await service.submit(input({ key: 'm2' }));
      const during = await service.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 0 });
      expect(during.leases).toEqual([]);
      expect(during.config).toMatchObject({ maintenance: true, maintenanceComment: 'kernel upgrade' });
      await service.pool.workers.heartbeat(worker.id, { running: [{ workloadId: workload.id, attempt: 1 }] });
      expect((await service.pool.workers.get(k('w1'))).state).toBe('maintenance_pending');
      await service.pool.leases.report(worker.id, { workloadId: workload.id, attempt: 1, state: 'running' });
      await service.pool.leases.report(worker.id, { workloadId: workload.id, attempt: 1, state: 'succeeded' });
      await service.pool.workers.heartbeat(worker.id, { running: [] });
      expect((await service.pool.workers.get(k('w1'))).state).toBe('maintenance_mode');
      await service.pool.workers.setMaintenance(k('w1'), false, null);
      const after = await service.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 0 });
      expect(after.leases.map((l) => l.key)).toEqual([k('m2')]);
    });

    it('cancelling a running workload reaches its worker through the poll', async () => {
      const { workload } = await service.submit(input({ key: 'c1' }));
      const { worker } = await register('w1', ['default'], 1);
      await service.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 0 });
      await service.pool.leases.report(worker.id, { workloadId: workload.id, attempt: 1, state: 'running' });
      const poll = service.pool.leases.poll(worker.id, { freeSlots: 0, waitMs: 5_000 });
      await service.cancel(k('c1'));
      expect((await poll).stop).toEqual([
        { workloadId: workload.id, attempt: 1, reason: 'cancelled', message: 'cancelled by request' },
      ]);
      await service.pool.leases.report(worker.id, { workloadId: workload.id, attempt: 1, state: 'cancelled' });
      expect(await service.getWorkload(k('c1'))).toMatchObject({ state: 'cancelled', reason: 'cancelled' });
    });

    it('a queued workload past its pending timeout fails as unschedulable once retries are spent', async () => {
      await service.submit(
        input({ key: 'nobody', queue: 'unserved', timeouts: { pendingSeconds: 1 }, maxInfraRetries: 0 }),
      );
      await new Promise((r) => setTimeout(r, 1_300));
      expect(await service.getWorkload(k('nobody'))).toMatchObject({ state: 'failed', reason: 'unschedulable' });
    });

    it('stores and serves logs by offset, ignoring a re-sent chunk', async () => {
      const { workload } = await service.submit(input({ key: 'logs' }));
      const { worker } = await register('w1', ['default'], 1);
      await service.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 0 });
      const chunk = (offset: number, text: string) => ({
        workloadId: workload.id,
        attempt: 1,
        stream: 'stdout' as const,
        offset,
        data: Buffer.from(text),
      });
      await service.pool.leases.appendLog(worker.id, chunk(0, 'hello '));
      await service.pool.leases.appendLog(worker.id, chunk(6, 'world\n'));
      await service.pool.leases.appendLog(worker.id, chunk(6, 'world\n'));
      const all = await service.readLogs({
        idOrKey: k('logs'),
        stream: 'stdout',
        offset: 0,
        maxBytes: 1 << 20,
        waitMs: 0,
      });
      expect(all.data.toString()).toBe('hello world\n');
      expect(all.nextOffset).toBe(12);
      const tail = await service.readLogs({
        idOrKey: k('logs'),
        stream: 'stdout',
        offset: 8,
        maxBytes: 1 << 20,
        waitMs: 0,
      });
      expect(tail.data.toString()).toBe('rld\n');
      const stderr = await service.readLogs({
        idOrKey: k('logs'),
        stream: 'stderr',
        offset: 0,
        maxBytes: 1 << 20,
        waitMs: 0,
      });
      expect(stderr.data.length).toBe(0);
    });
  });
}
