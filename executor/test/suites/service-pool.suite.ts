import { workloadInput } from '../../src/domain/workload.ts';
import type { ExecutorService } from '../../src/service/executor-service.ts';
import { type OpenService, waitFor, waitUntil } from '../support/service.ts';

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

    it('submitting the same key twice returns the same workload; another body under it is refused', async () => {
      const a = await service.submit(input({ key: 'k1', env: { A: '1' } }));
      const b = await service.submit(input({ key: 'k1', env: { A: '1' } }));
      expect(a.created).toBe(true);
      expect(b.created).toBe(false);
      expect(b.workload.id).toBe(a.workload.id);
      await expect(service.submit(input({ key: 'k1', command: ['other'], env: { A: '2' } }))).rejects.toMatchObject({
        status: 409,
        details: { field: 'key', differs: ['command', 'env'] },
      });
      await expect(service.submit(input({ key: 'k1', env: { A: '1' }, secretEnv: { T: 'x' } }))).rejects.toMatchObject({
        status: 409,
        details: { differs: ['secretEnv'] },
      });
      expect((await service.getWorkload(k('k1'))).command).toEqual(['true']);
    });

    it('the same key twice in one batch is one workload, created once', async () => {
      const results = await service.submitBatch([input({ key: 'twice' }), input({ key: 'twice' })]);
      expect(results.map((r) => r.created)).toEqual([true, false]);
      expect(results[1]!.workload.id).toBe(results[0]!.workload.id);
      await expect(
        service.submitBatch([input({ key: 'fresh' }), input({ key: 'twice', command: ['x'] })]),
      ).rejects.toMatchObject({ status: 409, details: { index: 1, differs: ['command'] } });
      await expect(service.getWorkload(k('fresh'))).rejects.toMatchObject({ status: 404 }); // nothing stored
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

    it('never exceeds the free slots, and lets a smaller task pass a bigger one that does not fit', async () => {
      await service.submitBatch([
        input({ key: 'two', priorityWeight: 9, poolSlots: 2 }),
        input({ key: 'three', priorityWeight: 8, poolSlots: 3 }),
        input({ key: 'one', priorityWeight: 1, poolSlots: 1 }),
      ]);
      const { worker } = await register('w1', ['default'], 3);
      const result = await service.pool.leases.poll(worker.id, { freeSlots: 3, waitMs: 0 });
      // "three" fits the worker's concurrency but not the one slot "two" leaves: "one" passes it.
      expect(result.leases.map((l) => l.key)).toEqual([k('two'), k('one')]);
      expect(result.leases.reduce((n, l) => n + l.poolSlots, 0)).toBeLessThanOrEqual(3);
    });

    it('a worker whose concurrency is lowered below the slots it holds gets no lease', async () => {
      await service.submitBatch([input({ key: 'a' }), input({ key: 'b' }), input({ key: 'c' })]);
      const { worker } = await register('w1', ['default'], 2);
      expect((await service.pool.leases.poll(worker.id, { freeSlots: 2, waitMs: 0 })).leases).toHaveLength(2);
      // Concurrency 1 against the two slots it holds: no slot is free, whatever the worker says.
      await service.pool.workers.update(worker.id, { concurrency: 1 });
      expect((await service.pool.leases.poll(worker.id, { freeSlots: 0, waitMs: 0 })).leases).toEqual([]);
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

    /** Lease passes so far that found nothing (airfleet_poll_passes_total{outcome="empty"}). */
    const emptyPasses = async () =>
      (await service.metrics.pollPasses.get()).values.find((v) => v.labels.outcome === 'empty')?.value ?? 0;
    const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
    /**
     * A worker of one slot running `a`, with its next poll parked (full, so on its freed slots). With `ownPass`,
     * that poll comes past the pass its lease poll left to skip, so it makes a pass of its own with no free
     * slot, `waiting` queued before it when given; its poll is then shorter than the suite's heartbeat timeout:
     * without a lease it answers empty, the worker still live.
     */
    const fullWorker = async ({ ownPass = false, waiting }: { ownPass?: boolean; waiting?: string } = {}) => {
      const { worker } = await register('w1', ['default'], 1);
      await service.submit(input({ key: 'a' }));
      const [a] = (await service.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 5_000 })).leases;
      if (waiting) await service.submit(input({ key: waiting }));
      if (ownPass) {
        await pause(1_100);
        await service.pool.workers.heartbeat(worker.id, { running: [{ workloadId: a!.id, attempt: a!.attempt }] });
      }
      const parked = service.pool.leases.poll(worker.id, { freeSlots: 0, waitMs: ownPass ? 1_500 : 5_000 });
      await pause(50);
      const endA = () =>
        service.pool.leases.report(worker.id, { workloadId: a!.id, attempt: a!.attempt, state: 'succeeded' });
      return { parked, endA };
    };

    /** Its slot frees with nothing queued for it: that costs no pass, and the poll takes the next submission. */
    const noPassThenNewWork = async ({
      parked,
      endA,
    }: {
      parked: ReturnType<typeof service.pool.leases.poll>;
      endA: () => Promise<unknown>;
    }) => {
      const empty = await emptyPasses();
      await endA();
      await pause(100);
      expect(await emptyPasses()).toBe(empty);
      const started = Date.now();
      await service.submit(input({ key: 'b' }));
      expect((await parked).leases.map((l) => l.key)).toEqual([k('b')]);
      expect(Date.now() - started).toBeLessThan(1_000);
    };

    it('a full worker whose slot frees with nothing queued makes no pass, waits on its queue and takes new work', async () => {
      await noPassThenNewWork(await fullWorker());
    });

    it('a full worker whose slot frees takes at once the work that waited for a slot', async () => {
      const { parked, endA } = await fullWorker();
      // Queued while every worker is full: no poll is parked on the queue to take it.
      await service.submit(input({ key: 'waited' }));
      await pause(50);
      const started = Date.now();
      await endA();
      expect((await parked).leases.map((l) => l.key)).toEqual([k('waited')]);
      expect(Date.now() - started).toBeLessThan(1_000);
    });

    it('a full worker whose pass (no free slot) came after work was queued takes it at once when its slot frees', async () => {
      // That pass locks no candidate: only its look at the queue says 'waited' is there (the executor-fleet
      // suite's 3-slot worker hung, waiting out poll after poll, when it did not look).
      const { parked, endA } = await fullWorker({ ownPass: true, waiting: 'waited' });
      const started = Date.now();
      await endA();
      expect((await parked).leases.map((l) => l.key)).toEqual([k('waited')]);
      expect(Date.now() - started).toBeLessThan(1_000);
    });

    it('a full worker whose pass (no free slot) found nothing queued makes no pass when its slot frees', async () => {
      await noPassThenNewWork(await fullWorker({ ownPass: true }));
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

    it('a heartbeat that arrived before a lease and is processed late does not take that lease back', async () => {
      const { workload } = await service.submit(input({ key: 'late-beat' }));
      const { worker } = await register('w1', ['default'], 1);
      const arrived = Date.now();
      await service.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 0 });
      await new Promise((r) => setTimeout(r, 400)); // past the lease-ack timeout (200 ms) while "queued"
      await service.pool.workers.heartbeat(worker.id, { running: [] }, arrived);
      expect((await service.getWorkload(workload.id)).state).toBe('pending');
      // The same silence in a heartbeat that arrived after the timeout is a denial: the lease is requeued.
      await service.pool.workers.heartbeat(worker.id, { running: [] });
      expect(await service.getWorkload(workload.id)).toMatchObject({ state: 'queued', attempt: 2 });
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

    it('a lease whose pending timeout passes while its worker is slow to start is never run twice', async () => {
      const { workload } = await service.submit(input({ key: 'slow', timeouts: { pendingSeconds: 1 } }));
      const { worker: slow } = await register('slow', ['default'], 1);
      const { worker: other } = await register('other', ['default'], 1);
      expect((await service.pool.leases.poll(slow.id, { freeSlots: 1, waitMs: 0 })).leases).toHaveLength(1);
      // The deadline passes: the service asks the slow worker to stop, and gives the work to nobody else.
      const beat = await waitFor(async () => {
        const b = await service.pool.workers.heartbeat(slow.id, { running: [{ workloadId: workload.id, attempt: 1 }] });
        return b.stop.length > 0 ? b : null;
      });
      expect(beat.stop).toEqual([
        {
          workloadId: workload.id,
          attempt: 1,
          reason: 'unschedulable',
          message: 'not started within pendingSeconds=1',
        },
      ]);
      expect((await service.pool.leases.poll(other.id, { freeSlots: 1, waitMs: 0 })).leases).toEqual([]);
      expect(await service.getWorkload(workload.id)).toMatchObject({ state: 'pending', attempt: 1 });
      // It confirms it did not start: only now is there a new attempt, for the other worker.
      await service.pool.leases.report(slow.id, {
        workloadId: workload.id,
        attempt: 1,
        state: 'failed',
        reason: 'unschedulable',
        started: false,
      });
      const retried = await service.pool.leases.poll(other.id, { freeSlots: 1, waitMs: 0 });
      expect(retried.leases.map((l) => [l.id, l.attempt])).toEqual([[workload.id, 2]]);
      // The slow worker's start of the old attempt is refused: it never runs beside the new one.
      await expect(
        service.pool.leases.report(slow.id, { workloadId: workload.id, attempt: 1, state: 'running' }),
      ).rejects.toMatchObject({ status: 409 });
    });

    it('a slow worker that starts before it hears of the timeout runs it, once, and nobody else does', async () => {
      const { workload } = await service.submit(input({ key: 'late', timeouts: { pendingSeconds: 1 } }));
      const { worker: slow } = await register('slow', ['default'], 1);
      const { worker: other } = await register('other', ['default'], 1);
      await service.pool.leases.poll(slow.id, { freeSlots: 1, waitMs: 0 });
      await waitFor(async () => (await service.getWorkload(workload.id)).stopReason === 'unschedulable');
      await service.pool.leases.report(slow.id, { workloadId: workload.id, attempt: 1, state: 'running' });
      expect(await service.getWorkload(workload.id)).toMatchObject({ state: 'running', attempt: 1, stopReason: null });
      await new Promise((r) => setTimeout(r, 300)); // reaper passes: nothing more is asked of it
      expect((await service.pool.leases.poll(other.id, { freeSlots: 1, waitMs: 0 })).leases).toEqual([]);
      await service.pool.leases.report(slow.id, { workloadId: workload.id, attempt: 1, state: 'succeeded' });
      expect(await service.getWorkload(workload.id)).toMatchObject({ state: 'succeeded', attempt: 1 });
    });

    it('a cancel that lands while an attempt is being retried is never run', async () => {
      const { workload } = await service.submit(input({ key: 'nocancelrun' }));
      const { worker } = await register('w1', ['default'], 1);
      const { worker: other } = await register('other', ['default'], 1);
      await service.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 0 });
      await service.cancel(workload.id);
      // The worker hands the lease back unstarted (it is stopping): a retry, except that a cancel is pending.
      await service.pool.leases.report(worker.id, { workloadId: workload.id, attempt: 1, state: 'released' });
      expect(await service.getWorkload(workload.id)).toMatchObject({ state: 'cancelled', reason: 'cancelled' });
      expect((await service.pool.leases.poll(other.id, { freeSlots: 1, waitMs: 0 })).leases).toEqual([]);
    });

    it('a start the worker never saw confirmed, handed back: a new attempt, no retry spent', async () => {
      // The service recorded the start (running), but its answer never reached the worker (the service was
      // stopping as it answered): the worker did not start the task, and hands the attempt back when it stops.
      const { workload } = await service.submit(input({ key: 'lostconfirm' }));
      const { worker } = await register('w1', ['default'], 1);
      const { worker: other } = await register('other', ['default'], 1);
      await service.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 0 });
      await service.pool.leases.report(worker.id, { workloadId: workload.id, attempt: 1, state: 'running' });
      await service.pool.leases.report(worker.id, { workloadId: workload.id, attempt: 1, state: 'released' });
      expect(await service.getWorkload(workload.id)).toMatchObject({ state: 'queued', attempt: 2, infraRetries: 0 });
      const next = await service.pool.leases.poll(other.id, { freeSlots: 1, waitMs: 0 });
      expect(next.leases.map((l) => [l.id, l.attempt])).toEqual([[workload.id, 2]]);
    });

    it('a worker lost with a cancelled lease in hand: the lease ends cancelled, not requeued', async () => {
      const { workload } = await service.submit(input({ key: 'lostcancel' }));
      const { worker } = await register('w1', ['default'], 1);
      await service.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 0 });
      await service.cancel(workload.id);
      await waitFor(async () => (await service.getWorkload(workload.id)).state === 'cancelled', 10_000);
      expect((await service.getWorkload(workload.id)).attempt).toBe(1);
    });

    it("a live worker's name cannot be taken: 409 unless it presents that worker's own token", async () => {
      const first = await register('named', ['default'], 1);
      await expect(register('named', ['default'], 1)).rejects.toMatchObject({
        status: 409,
        details: { field: 'name' },
      });
      const again = await service.pool.workers.register({
        name: k('named'),
        queues: [queue],
        concurrency: 2,
        labels: {},
        runtime: 'process',
        version: 'test',
        previousToken: first.token,
      });
      expect(again).toMatchObject({ resumed: true, worker: { id: first.worker.id, concurrency: 2 } });
      await service.pool.workers.deregister(first.worker.id);
      const taken = await register('named', ['default'], 1);
      expect(taken.worker.id).not.toBe(first.worker.id);
    });

    it('a log upload that landed but whose answer was lost, sent again longer, leaves the log whole', async () => {
      const { workload } = await service.submit(input({ key: 'relog' }));
      const { worker } = await register('w1', ['default'], 1);
      await service.pool.leases.poll(worker.id, { freeSlots: 1, waitMs: 0 });
      const append = (offset: number, text: string) =>
        service.pool.leases.appendLog(worker.id, {
          workloadId: workload.id,
          attempt: 1,
          stream: 'stdout',
          offset,
          data: Buffer.from(text),
        });
      expect(await append(0, 'hello ')).toBe(6); // landed; pretend its answer was lost
      await expect(append(0, 'hello world\n')).rejects.toMatchObject({ status: 409, storedLength: 6 });
      await expect(append(9, 'ld\n')).rejects.toMatchObject({ status: 409, storedLength: 6 }); // no gap either
      expect(await append(0, 'hello ')).toBe(6); // the same chunk again is a no-op
      expect(await append(6, 'world\n')).toBe(12);
      const all = await service.readLogs({
        idOrKey: workload.id,
        stream: 'stdout',
        offset: 0,
        maxBytes: 1 << 20,
        waitMs: 0,
      });
      expect(all.data.toString()).toBe('hello world\n');
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
