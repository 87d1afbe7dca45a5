import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Workload } from '../../executor/src/domain/workload.ts';
import { type AirfleetProcess, ServiceProcess, waitFor } from '../src/airfleet-process.ts';

const BASE_IMAGE = process.env.AIRFLEET_BASE_IMAGE ?? 'local/debian:bookworm-slim';
const HEARTBEAT_TIMEOUT_MS = 4_000;

/**
 * A worker that dies leaves nothing running (docs/architecture.md, "Leases and fencing"): its process tasks
 * die with it, and its docker tasks are removed when it comes back, before it takes work again, so the retry
 * Airflow starts never runs beside them.
 */
describe('a killed worker leaves no task running', () => {
  let service: ServiceProcess;
  let dir: string;
  const workers: AirfleetProcess[] = [];

  beforeAll(async () => {
    service = await ServiceProcess.start({ heartbeatIntervalMs: 500, heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS });
    dir = mkdtempSync(join(tmpdir(), 'airfleet-orphans-'));
  });
  afterAll(async () => {
    for (const w of workers) await w.kill('SIGKILL');
    await service?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (name: string, args: string[]) => {
    const w = service.worker(name, args);
    workers.push(w);
    await waitFor(
      `worker ${name}`,
      async () =>
        ['idle', 'running'].includes(
          (await service.client.request<{ state: string }>('GET', `/v1/workers/${name}`)).state,
        ),
      20_000,
      () => w.tail(),
    );
    return w;
  };
  const submit = (body: Record<string, unknown>) =>
    service.client.request<Workload>('POST', '/v1/workloads', { body: { key: `o-${Math.random()}`, ...body } });
  const get = (id: string) => service.client.request<Workload>('GET', `/v1/workloads/${id}`);

  it("a SIGKILLed worker's `sleep 300` task is dead within the heartbeat timeout, and reported lost", async () => {
    const worker = await start('proc-1', ['--queues', 'orphans', '--concurrency', '1', '--kill-grace', '1']);
    const pidFile = join(dir, 'pid');
    const w = await submit({ queue: 'orphans', command: ['sh', '-c', `echo $$ > ${pidFile}; exec sleep 300`] });
    await waitFor('the task to run', async () => (await get(w.id)).state === 'running' && existsSync(pidFile));
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    expect(alive(pid)).toBe(true);
    const killedAt = Date.now();
    await worker.kill('SIGKILL');
    await waitFor('the task process to die', async () => !alive(pid), HEARTBEAT_TIMEOUT_MS);
    console.info(`the orphaned task died ${Date.now() - killedAt} ms after its worker`);
    const lost = await waitFor('the workload to fail', async () => {
      const now = await get(w.id);
      return now.state === 'failed' ? now : null;
    });
    expect(lost).toMatchObject({ reason: 'lost', attempt: 1 });
  });

  it("a restarted docker worker removes its predecessor's task container before it takes work", async () => {
    const args = ['--queues', 'orphan-containers', '--concurrency', '1', '--runtime', 'docker', '--kill-grace', '1'];
    const first = await start('dock-1', args);
    const w = await submit({ queue: 'orphan-containers', image: BASE_IMAGE, command: ['sleep', '300'] });
    await waitFor(
      'the task to run',
      async () => (await get(w.id)).state === 'running',
      30_000,
      () => first.tail(),
    );
    const containers = () =>
      execFileSync('docker', ['ps', '-aq', '--filter', `label=airfleet.workload=${w.id}`], { encoding: 'utf8' }).trim();
    // `running` is recorded just before the container is made: wait for it to exist.
    await waitFor(
      'the task container',
      async () => containers() !== '',
      30_000,
      () => first.tail(),
    );
    await first.kill('SIGKILL');
    expect(containers()).not.toBe(''); // not a child of the worker: it outlives it
    await start('dock-1', args); // same name, same state directory
    await waitFor('the orphan container to be removed', async () => containers() === '', 20_000);
    const settled = await waitFor('the workload to fail', async () => {
      const now = await get(w.id);
      return now.state === 'failed' ? now : null;
    });
    expect(settled).toMatchObject({ reason: 'lost', attempt: 1 });
  });
});

/** Running (a zombie waiting for its new parent to reap it counts as dead: it runs nothing). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
