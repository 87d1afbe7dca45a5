import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiClient } from '../../executor/src/client/api-client.ts';
import type { Workload } from '../../executor/src/domain/workload.ts';
import type { Worker } from '../../executor/src/store/workers.ts';
import { ADMIN_TOKEN, AirfleetProcess, ServiceProcess, waitFor } from '../src/airfleet-process.ts';
import { type StartedPostgres, startPostgres } from '../src/postgres.ts';

/**
 * The executor service and pull workers as real processes, against PostgreSQL in a container: the
 * behaviours a user relies on when machines, processes and the database fail.
 */
describe('executor fleet on PostgreSQL (service and workers as processes)', () => {
  let postgres: StartedPostgres;
  let service: ServiceProcess;
  let workers: AirfleetProcess[] = [];
  let dir: string;
  let n = 0;

  beforeAll(async () => {
    postgres = await startPostgres();
    service = await ServiceProcess.start({ databaseUrl: postgres.url, backends: 'pool,local' });
  });
  afterAll(async () => {
    await service?.stop();
    await postgres?.stop();
  });
  beforeEach(() => {
    n++;
    dir = mkdtempSync(join(tmpdir(), 'airfleet-it-'));
  });
  afterEach(async () => {
    await Promise.all(workers.map((w) => w.kill('SIGKILL')));
    workers = [];
    rmSync(dir, { recursive: true, force: true });
  });

  const api = () => service.client;
  const q = (name: string) => `${name}-${n}`;
  const startWorker = async (name: string, args: string[]) => {
    const w = service.worker(`${name}-${n}`, args);
    workers.push(w);
    await waitFor(
      `worker ${name} to register`,
      async () => {
        const worker = await api().request<Worker>('GET', `/v1/workers/${name}-${n}`);
        return ['idle', 'running'].includes(worker.state) && Date.parse(worker.registeredAt) > Date.now() - 60_000;
      },
      20_000,
      () => w.tail(),
    );
    return w;
  };
  const submit = (body: Record<string, unknown>) =>
    api().request<Workload>('POST', '/v1/workloads', { body: { key: `${n}-${Math.random()}`, ...body } });
  const getOn = (client: ApiClient, id: string) => client.request<Workload>('GET', `/v1/workloads/${id}`);
  const get = (id: string) => getOn(api(), id);
  const ended = (w: Workload) => ['succeeded', 'failed', 'cancelled'].includes(w.state);
  /** Waits for workloads of the suite's service, or of a test's own (`client`), to end. */
  const waitEndedOn = (client: ApiClient, ids: string[], timeoutMs = 30_000) =>
    waitFor(
      `${ids.length} workloads to end`,
      async () => {
        const all = await Promise.all(ids.map((id) => getOn(client, id)));
        return all.every(ended) ? all : null;
      },
      timeoutMs,
      () => workers.map((w) => `--- ${w.name}\n${w.tail(10)}`).join('\n'),
    );
  const waitEnded = (ids: string[], timeoutMs = 30_000) => waitEndedOn(api(), ids, timeoutMs);
  const logOf = async (id: string, stream = 'stdout') =>
    Buffer.from(
      (await api().request<{ data: string }>('GET', `/v1/workloads/${id}/logs`, { query: { stream } })).data,
      'base64',
    ).toString();

  it('runs workloads on two queues, each on a worker that serves its queue, with logs', async () => {
    await startWorker('a', ['--queues', q('alpha'), '--concurrency', '3']);
    await startWorker('b', ['--queues', q('beta'), '--concurrency', '2']);
    const submitted = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        submit({ queue: i % 2 ? q('alpha') : q('beta'), command: ['sh', '-c', `echo out-${i}; echo err-${i} >&2`] }),
      ),
    );
    const done = await waitEnded(submitted.map((w) => w.id));
    for (const [i, w] of done.entries()) {
      expect(w).toMatchObject({ state: 'succeeded', exitCode: 0, attempt: 1 });
      expect(w.workerName).toBe(w.queue === q('alpha') ? `a-${n}` : `b-${n}`);
      expect(await logOf(w.id)).toBe(`out-${i}\n`);
      expect(await logOf(w.id, 'stderr')).toBe(`err-${i}\n`);
    }
  });

  it('never runs more pool slots on a worker than its concurrency', async () => {
    await startWorker('slots', ['--queues', q('slots'), '--concurrency', '3']);
    const journal = join(dir, 'journal');
    const ids: string[] = [];
    for (let i = 0; i < 18; i++) {
      const slots = (i % 3) + 1;
      const w = await submit({
        queue: q('slots'),
        poolSlots: slots,
        command: ['sh', '-c', `echo "+${slots}" >> ${journal}; sleep 0.2; echo "-${slots}" >> ${journal}`],
      });
      ids.push(w.id);
    }
    const done = await waitEnded(ids, 60_000);
    expect(done.every((w) => w.state === 'succeeded')).toBe(true);
    let inUse = 0;
    let peak = 0;
    for (const line of readFileSync(journal, 'utf8').trim().split('\n')) {
      inUse += Number(line);
      peak = Math.max(peak, inUse);
    }
    expect(inUse).toBe(0);
    expect(peak).toBeLessThanOrEqual(3);
    expect(peak).toBeGreaterThan(1); // and it did run things side by side
  });

  it('fails the running task of a killed worker as lost within the heartbeat timeout', async () => {
    const worker = await startWorker('doomed', ['--queues', q('doomed'), '--concurrency', '1']);
    const marker = join(dir, 'started');
    const w = await submit({ queue: q('doomed'), command: ['sh', '-c', `touch ${marker}; exec sleep 30`] });
    await waitFor('the task to run', async () => (await get(w.id)).state === 'running');
    const killedAt = Date.now();
    await worker.kill('SIGKILL');
    const lost = await waitFor(
      'the task to be failed as lost',
      async () => {
        const now = await get(w.id);
        return now.state === 'failed' ? now : null;
      },
      15_000,
    );
    expect(lost).toMatchObject({ state: 'failed', reason: 'lost', attempt: 1 });
    expect(Date.now() - killedAt).toBeLessThan(2_000 + 3_000); // heartbeat timeout + reaper and slack
    expect((await api().request<Worker>('GET', `/v1/workers/doomed-${n}`)).state).toBe('lost');
  });

  it('loses nothing and runs nothing twice when the service is killed and restarted mid-run', async () => {
    // A service outage shorter than the heartbeat timeout is ridden out: workers keep their tasks running
    // (a longer one would make them fence themselves, which is the next test's business). A timeout of 20 s
    // leaves room for a restart on a loaded machine.
    const own = await ServiceProcess.start({
      databaseUrl: await postgres.createDatabase(`restart_${n}`),
      heartbeatIntervalMs: 1_000,
      heartbeatTimeoutMs: 20_000,
    });
    try {
      const worker = own.worker(`steady-${n}`, ['--queues', q('steady'), '--concurrency', '4']);
      workers.push(worker);
      await waitFor('the worker to register', async () => {
        const list = await own.client.request<{ workers: Worker[] }>('GET', '/v1/workers');
        return list.workers.some((w) => w.name === `steady-${n}`);
      });
      const ids: string[] = [];
      for (let i = 0; i < 8; i++) {
        const w = await own.client.request<Workload>('POST', '/v1/workloads', {
          body: {
            key: `${n}-${i}`,
            queue: q('steady'),
            command: ['sh', '-c', `echo run >> ${join(dir, `runs-${i}`)}; sleep 1.5; echo done-${i}`],
          },
        });
        ids.push(w.id);
      }
      const getOwn = (id: string) => getOn(own.client, id);
      await waitFor('some tasks to run', async () =>
        (await Promise.all(ids.map(getOwn))).some((w) => w.state === 'running'),
      );
      await own.restart('SIGKILL');
      const done = await waitEndedOn(own.client, ids, 60_000);
      for (const [i, w] of done.entries()) {
        expect(w).toMatchObject({ state: 'succeeded', attempt: 1 });
        expect(readFileSync(join(dir, `runs-${i}`), 'utf8')).toBe('run\n');
        const log = await own.client.request<{ data: string }>('GET', `/v1/workloads/${w.id}/logs`);
        expect(Buffer.from(log.data, 'base64').toString()).toBe(`done-${i}\n`);
      }
    } finally {
      await own.stop();
    }
  });

  it('re-attaches to local-backend runs after the service is killed: each runs once, with its whole log', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const w = await submit({
        backend: 'local',
        queue: q('local'),
        command: [
          'sh',
          '-c',
          `echo run >> ${join(dir, `local-runs-${i}`)}; echo before-${i}; sleep 2; echo after-${i}`,
        ],
      });
      ids.push(w.id);
    }
    // The local backend runs as many at once as the host has cores (at least 2); the rest wait queued.
    await waitFor(
      'two local tasks to run',
      async () => (await Promise.all(ids.map(get))).filter((w) => w.state === 'running').length >= 2,
    );
    await service.restart('SIGKILL');
    const done = await waitEnded(ids, 60_000);
    for (const [i, w] of done.entries()) {
      expect(w).toMatchObject({ state: 'succeeded', attempt: 1, exitCode: 0 });
      expect(readFileSync(join(dir, `local-runs-${i}`), 'utf8')).toBe('run\n');
      expect(await logOf(w.id)).toBe(`before-${i}\nafter-${i}\n`);
    }
  });

  it('rides out a PostgreSQL restart: running tasks finish and are reported', async () => {
    // As for a restart of the service: an outage shorter than the heartbeat timeout is ridden out.
    const own = await ServiceProcess.start({
      databaseUrl: await postgres.createDatabase(`pgrestart_${n}`),
      heartbeatIntervalMs: 1_000,
      heartbeatTimeoutMs: 30_000,
    });
    const worker = own.worker(`pg-${n}`, ['--queues', q('pg'), '--concurrency', '4']);
    workers.push(worker);
    try {
      const post = (command: string[]) =>
        own.client.request<Workload>('POST', '/v1/workloads', {
          body: { key: `${n}-${Math.random()}`, queue: q('pg'), command },
        });
      const getOwn = (id: string) => getOn(own.client, id);
      const endedAll = (ids: string[]) => waitEndedOn(own.client, ids, 60_000);
      const ids = await Promise.all(
        Array.from({ length: 4 }, async (_, i) => (await post(['sh', '-c', `sleep 2; echo pg-${i}`])).id),
      );
      await waitFor('the tasks to run', async () =>
        (await Promise.all(ids.map(getOwn))).every((w) => w.state === 'running'),
      );
      await postgres.restart();
      const done = await endedAll(ids);
      expect(done.map((w) => w.state)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
      // And new work still flows after the restart.
      const after = await post(['echo', 'after']);
      expect((await endedAll([after.id]))[0]).toMatchObject({ state: 'succeeded' });
    } finally {
      await own.stop();
    }
  });

  it('drains a worker in maintenance: running tasks finish, new ones wait, then resume', async () => {
    await startWorker('maint', ['--queues', q('maint'), '--concurrency', '2']);
    const running = await submit({ queue: q('maint'), command: ['sh', '-c', 'sleep 1.5; echo drained'] });
    await waitFor('the task to run', async () => (await get(running.id)).state === 'running');
    await api().request('POST', `/v1/workers/maint-${n}/maintenance`, { body: { on: true, comment: 'patching' } });
    const waiting = await submit({ queue: q('maint'), command: ['echo', 'later'] });
    await waitFor(
      'maintenance_pending',
      async () => (await api().request<Worker>('GET', `/v1/workers/maint-${n}`)).state === 'maintenance_pending',
    );
    expect((await waitEnded([running.id]))[0]).toMatchObject({ state: 'succeeded' });
    const mode = await waitFor('maintenance_mode', async () => {
      const w = await api().request<Worker>('GET', `/v1/workers/maint-${n}`);
      return w.state === 'maintenance_mode' ? w : null;
    });
    expect(mode.maintenanceComment).toBe('patching');
    expect((await get(waiting.id)).state).toBe('queued');
    await api().request('POST', `/v1/workers/maint-${n}/maintenance`, { body: { on: false } });
    expect((await waitEnded([waiting.id]))[0]).toMatchObject({ state: 'succeeded' });
  });

  it('drains on SIGINT (the task finishes) and stops tasks on SIGTERM (reported preempted)', async () => {
    const gentle = await startWorker('sigint', ['--queues', q('sigint'), '--concurrency', '1']);
    const finishing = await submit({ queue: q('sigint'), command: ['sh', '-c', 'sleep 1; echo finished'] });
    await waitFor('the task to run', async () => (await get(finishing.id)).state === 'running');
    gentle.child.kill('SIGINT');
    expect(await gentle.exited).toBe(0);
    expect(await get(finishing.id)).toMatchObject({ state: 'succeeded' });
    expect((await api().request<Worker>('GET', `/v1/workers/sigint-${n}`)).state).toBe('offline');

    const abrupt = await startWorker('sigterm', ['--queues', q('sigterm'), '--concurrency', '1', '--kill-grace', '1']);
    const stopped = await submit({ queue: q('sigterm'), command: ['sleep', '30'] });
    await waitFor('the task to run', async () => (await get(stopped.id)).state === 'running');
    abrupt.child.kill('SIGTERM');
    expect(await abrupt.exited).toBe(0);
    expect(await get(stopped.id)).toMatchObject({ state: 'failed', reason: 'preempted' });
  });

  it('rejects bad tokens and bad input over HTTP, storing nothing', async () => {
    const bad = await fetch(`${service.url}/v1/workloads`, {
      headers: { authorization: 'Bearer aft_wrongwrongwrong_nottherightsecretatall' },
    });
    expect(bad.status).toBe(401);
    const key = `bad-input-${n}`;
    const res = await fetch(`${service.url}/v1/workloads`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ key, command: ['x'], poolSlots: -1, priorityWeight: 'high' }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { message: string };
    expect(body.message).toMatch(/body\.poolSlots/);
    expect(body.message).toMatch(/body\.priorityWeight/);
    expect(
      (await fetch(`${service.url}/v1/workloads/${key}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }))
        .status,
    ).toBe(404);

    const denied = new AirfleetProcess(
      'intruder',
      ['--token', 'aft_wrongwrongwrong_nottherightsecretatall', 'worker', '--queues', 'x'],
      { AIRFLEET_API_URL: service.url },
    );
    expect(await denied.exited).toBe(2);
    expect(denied.tail()).toMatch(/invalid or revoked token \(HTTP 401 unauthorized\)/);
  });
});
