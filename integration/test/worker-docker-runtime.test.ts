import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Workload } from '../../executor/src/domain/workload.ts';
import { type AirfleetProcess, ServiceProcess, waitFor } from '../src/airfleet-process.ts';

const BASE_IMAGE = process.env.AIRFLEET_BASE_IMAGE ?? 'local/debian:bookworm-slim';

/** A pull worker with the docker runtime: one container per task on the local engine (embedded service). */
describe('worker docker runtime', () => {
  let service: ServiceProcess;
  let worker: AirfleetProcess;
  let dir: string;

  beforeAll(async () => {
    service = await ServiceProcess.start({});
    worker = service.worker('docker-1', [
      '--queues',
      'containers',
      '--concurrency',
      '2',
      '--runtime',
      'docker',
      '--kill-grace',
      '1',
    ]);
    await waitFor(
      'the docker worker',
      async () => (await service.client.request<{ state: string }>('GET', '/v1/workers/docker-1')).state === 'idle',
      20_000,
      () => worker.tail(),
    );
    dir = mkdtempSync(join(tmpdir(), 'airfleet-docker-'));
  });
  afterAll(async () => {
    await worker?.kill('SIGKILL');
    await service?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const submit = (body: Record<string, unknown>) =>
    service.client.request<Workload>('POST', '/v1/workloads', {
      body: { key: `d-${Math.random()}`, queue: 'containers', ...body },
    });
  const ended = (id: string) =>
    waitFor(
      'the workload to end',
      async () => {
        const w = await service.client.request<Workload>('GET', `/v1/workloads/${id}`);
        return ['succeeded', 'failed', 'cancelled'].includes(w.state) ? w : null;
      },
      60_000,
      () => worker.tail(),
    );
  const log = async (id: string, stream: string) =>
    Buffer.from(
      (await service.client.request<{ data: string }>('GET', `/v1/workloads/${id}/logs`, { query: { stream } })).data,
      'base64',
    ).toString();

  it('runs the task in a container with its env and a file-mounted secret, keeping the exit code', async () => {
    const secret = join(dir, 'token');
    writeFileSync(secret, 's3cr3t-value');
    const w = await submit({
      image: BASE_IMAGE,
      command: ['sh', '-c', 'echo "in $GREETING"; cat /run/secrets/token; echo oops >&2; exit 5'],
      env: { GREETING: 'container' },
      execConfig: { docker: { secrets: [{ source: secret, target: '/run/secrets/token' }] } },
    });
    const done = await ended(w.id);
    expect(done).toMatchObject({ state: 'failed', reason: 'task_error', exitCode: 5 });
    expect(await log(w.id, 'stdout')).toBe('in container\ns3cr3t-value');
    expect(await log(w.id, 'stderr')).toBe('oops\n');
  });

  it('fails an image that cannot be pulled as image_pull, before start', async () => {
    const w = await submit({ image: 'local/airfleet-no-such-image:never', command: ['true'], maxInfraRetries: 0 });
    const done = await ended(w.id);
    expect(done).toMatchObject({ state: 'failed', reason: 'image_pull', startedAt: null });
    expect(await log(w.id, 'stderr')).toMatch(/Failed to pull image local\/airfleet-no-such-image:never/);
  });

  it('stops the container when the workload is cancelled', async () => {
    const w = await submit({ image: BASE_IMAGE, command: ['sh', '-c', 'echo up; exec sleep 60'] });
    await waitFor('the container task to print', async () => (await log(w.id, 'stdout')) === 'up\n', 30_000);
    await service.client.request('POST', `/v1/workloads/${w.id}/cancel`);
    const done = await ended(w.id);
    expect(done).toMatchObject({ state: 'cancelled', reason: 'cancelled' });
  });
});
