import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Workload } from '../../executor/src/domain/workload.ts';
import { type AirfleetProcess, ServiceProcess, waitFor } from '../src/airfleet-process.ts';

const BASE_IMAGE = process.env.AIRFLEET_BASE_IMAGE ?? 'local/debian:bookworm-slim';

/** Packets the task network's metadata rule has rejected so far (worker/task-network.ts installs it). */
function rejectedByMetadataRule(): number {
  const rules = execFileSync('iptables', ['-w', '-n', '-v', '-x', '-L', 'DOCKER-USER'], { encoding: 'utf8' });
  const rule = rules.split('\n').find((l) => l.includes('airfleet-tasks') && l.includes('169.254.0.0/16'));
  if (!rule) throw new Error(`no metadata rule for airfleet-tasks in DOCKER-USER:\n${rules}`);
  return Number(rule.trim().split(/\s+/)[0]);
}

/**
 * A pull worker with the docker runtime: one container per task on the local engine (embedded service), on
 * the task network, with one secrets directory.
 */
describe('worker docker runtime', () => {
  let service: ServiceProcess;
  let worker: AirfleetProcess;
  let dir: string;
  let secrets: string;

  beforeAll(async () => {
    service = await ServiceProcess.start({});
    dir = mkdtempSync(join(tmpdir(), 'airfleet-docker-'));
    secrets = join(dir, 'secrets');
    mkdirSync(secrets);
    worker = service.worker('docker-1', [
      '--secrets-dir',
      secrets,
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
    const secret = join(secrets, 'token');
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

/** What a `submit` token could use to own the worker host, each refused in a way its user can read. */
describe('worker docker runtime: what a task may not reach', () => {
  let service: ServiceProcess;
  let worker: AirfleetProcess;
  let dir: string;
  let secrets: string;

  beforeAll(async () => {
    service = await ServiceProcess.start({});
    dir = mkdtempSync(join(tmpdir(), 'airfleet-docker-guard-'));
    secrets = join(dir, 'secrets');
    mkdirSync(secrets);
    writeFileSync(join(dir, 'outside'), 'not a secret of the task');
    writeFileSync(join(secrets, 'allowed'), 'allowed-secret');
    symlinkSync(join(dir, 'outside'), join(secrets, 'link-out'));
    worker = service.worker('docker-guard', [
      '--secrets-dir',
      secrets,
      '--queues',
      'guarded',
      '--concurrency',
      '2',
      '--runtime',
      'docker',
      '--kill-grace',
      '1',
    ]);
    await waitFor(
      'the docker worker',
      async () => (await service.client.request<{ state: string }>('GET', '/v1/workers/docker-guard')).state === 'idle',
      20_000,
      () => worker.tail(),
    );
  });
  afterAll(async () => {
    await worker?.kill('SIGKILL');
    await service?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const submit = (body: Record<string, unknown>) =>
    service.client.request<Workload>('POST', '/v1/workloads', {
      body: { key: `g-${Math.random()}`, queue: 'guarded', image: BASE_IMAGE, maxInfraRetries: 0, ...body },
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

  it('cannot reach the instance metadata address: rejected at once ("No route to host"), not left to time out', async () => {
    // Nothing listens on 169.254.169.254 on this machine, so a silent drop would look like a timeout and
    // prove nothing. The rule REJECTs: the connect fails in about a second (the kernel retries the SYN
    // once after the first ICMP error), far inside the 10 s timeout, and the rule's own packet counter
    // rises, so the refusal is the rule's. The packets never leave the host.
    const before = rejectedByMetadataRule();
    const w = await submit({
      command: [
        'bash',
        '-c',
        'start=$(date +%s%N); timeout 10 bash -c "exec 3<>/dev/tcp/169.254.169.254/80"; code=$?; ' +
          'echo "exit=$code ms=$(( ($(date +%s%N) - start) / 1000000 ))"',
      ],
    });
    const done = await ended(w.id);
    expect(done).toMatchObject({ state: 'succeeded' });
    const out = await log(w.id, 'stdout');
    const [, code, ms] = /exit=(\d+) ms=(\d+)/.exec(out) ?? [];
    expect(code).toBe('1'); // the connect failed; 124 would be the timeout
    expect(Number(ms)).toBeLessThan(5_000);
    expect(await log(w.id, 'stderr')).toMatch(/169\.254\.169\.254\/80: No route to host/);
    expect(rejectedByMetadataRule()).toBeGreaterThan(before);
  });

  it('cannot read the Docker socket: it is not in the container, and mounting it is refused', async () => {
    const look = await submit({ command: ['sh', '-c', 'cat /var/run/docker.sock; ls -l /var/run/docker.sock'] });
    expect(await ended(look.id)).toMatchObject({ state: 'failed', reason: 'task_error' });
    expect(await log(look.id, 'stderr')).toMatch(/\/var\/run\/docker\.sock: No such file or directory/);

    const mount = await submit({
      command: ['cat', '/run/docker.sock'],
      execConfig: { docker: { secrets: [{ source: '/var/run/docker.sock', target: '/run/docker.sock' }] } },
    });
    const refused = await ended(mount.id);
    expect(refused).toMatchObject({ state: 'failed', reason: 'driver', startedAt: null });
    expect(refused.message).toMatch(
      `execConfig.docker.secrets.0.source: '/var/run/docker.sock' is outside this worker's secrets directories (${secrets})`,
    );
    expect(await log(mount.id, 'stderr')).toMatch(/secret mount refused/);
  });

  it('mounts secrets only from its secrets directory: outside, through "..", or through a symlink is refused', async () => {
    const w = await submit({
      command: ['cat', '/s/a', '/s/b', '/s/c'],
      execConfig: {
        docker: {
          secrets: [
            { source: join(dir, 'outside'), target: '/s/a' },
            { source: `${secrets}/../outside`, target: '/s/b' },
            { source: join(secrets, 'link-out'), target: '/s/c' },
          ],
        },
      },
    });
    const done = await ended(w.id);
    expect(done).toMatchObject({ state: 'failed', reason: 'driver', startedAt: null });
    expect(done.message).toContain(`secrets.0.source: '${join(dir, 'outside')}' is outside this worker's secrets`);
    expect(done.message).toContain("secrets.1.source: '");
    expect(done.message).toContain("is not a normalized path (no '..', no '//')");
    expect(done.message).toContain(
      `secrets.2.source: '${join(secrets, 'link-out')}' resolves to '${join(dir, 'outside')}'`,
    );

    // The same task with the secret that is inside runs, and reads it.
    const ok = await submit({
      command: ['cat', '/s/a'],
      execConfig: { docker: { secrets: [{ source: join(secrets, 'allowed'), target: '/s/a' }] } },
    });
    expect(await ended(ok.id)).toMatchObject({ state: 'succeeded' });
    expect(await log(ok.id, 'stdout')).toBe('allowed-secret');
  });

  it('takes a user only as name, uid or uid:gid', async () => {
    const bad = await submit({ command: ['id'], execConfig: { docker: { user: '0 --privileged' } } });
    const refused = await ended(bad.id);
    expect(refused).toMatchObject({ state: 'failed', reason: 'driver', startedAt: null });
    expect(refused.message).toMatch(/execConfig\.docker\.user: user must be a name, a uid, uid:gid or name:group/);
    const good = await submit({ command: ['id', '-u'], execConfig: { docker: { user: '4242:4242' } } });
    expect(await ended(good.id)).toMatchObject({ state: 'succeeded' });
    expect(await log(good.id, 'stdout')).toBe('4242\n');
  });
});
