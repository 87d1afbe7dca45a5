import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nomadHealthProblems } from '../../executor/src/backends/nomad/health-check.ts';
import { NomadClient } from '../../executor/src/backends/nomad/nomad-client.ts';
import { nomadConfigFromEnv } from '../../executor/src/backends/nomad/nomad-config.ts';
import type { Workload } from '../../executor/src/domain/workload.ts';
import { ADMIN_TOKEN, ServiceProcess, waitFor } from '../src/airfleet-process.ts';
import { type NomadTestCerts, nomadTestCerts } from '../src/nomad-fake/certs.ts';
import { type NomadFake, startNomadFake } from '../src/nomad-fake/index.ts';

// The nomad backend in a real service process against THE NOMAD FAKE (integration/src/nomad-fake/), which
// runs every task as a Docker container, over mutual TLS with an ACL token. With NOMAD_ADDR set (and
// NOMAD_TOKEN, NOMAD_CACERT, NOMAD_CLIENT_CERT, NOMAD_CLIENT_KEY as a real agent needs) the same scenarios
// run against that agent instead; those that inject faults or read the fake's internals are skipped then,
// saying so. The real agent needs host volumes `config` and `dags` and the image below on its clients.

const REAL = Boolean(process.env.NOMAD_ADDR);
const IMAGE = process.env.AIRFLEET_NOMAD_TEST_IMAGE ?? 'local/debian:bookworm-slim';
const PENDING_TIMEOUT_S = 5;
const MAX_CONNECTIONS = 8;

const terminal = (w: Workload) => ['succeeded', 'failed', 'cancelled'].includes(w.state);

/** Scenarios that need the fake (fault injection, its stored state) are skipped against a real agent. */
const fakeOnly = (name: string, fn: () => Promise<void>, timeout?: number) =>
  REAL
    ? it.skip(`${name} (skipped: NOMAD_ADDR points at a real agent; this scenario injects faults into the fake)`, fn)
    : it(name, fn, timeout);

describe('nomad backend (service as a process)', () => {
  let fake: NomadFake | null = null;
  let service: ServiceProcess;
  let certs: NomadTestCerts;
  let nomadEnv: Record<string, string>;
  const dirs: string[] = [];
  let n = 0;

  beforeAll(async () => {
    if (REAL) {
      console.warn(`nomad suite: running against the real agent at ${process.env.NOMAD_ADDR}`);
      nomadEnv = Object.fromEntries(
        Object.entries(process.env).filter(([k]) => k.startsWith('NOMAD_')) as Array<[string, string]>,
      );
    } else {
      const dir = mkdtempSync(join(tmpdir(), 'airfleet-nomad-it-'));
      dirs.push(dir);
      certs = nomadTestCerts(dir);
      const dags = join(dir, 'dags');
      const config = join(dir, 'config');
      execFileSync('mkdir', ['-p', dags, config]);
      writeFileSync(join(dags, 'hello.txt'), 'hello from the dags volume\n');
      fake = await startNomadFake({
        tls: certs.server,
        token: 'fake-management-secret-0123',
        hostVolumes: { dags: { path: dags }, config: { path: config } },
        heartbeatMs: 1_000,
      });
      // Nomad's smallest rotation is 1 MB; the fake rotates every 64 KiB so that a small task spans files.
      fake.runner.rotateBytes = 64 * 1024;
      nomadEnv = {
        NOMAD_ADDR: fake.address,
        NOMAD_TOKEN: 'fake-management-secret-0123',
        NOMAD_CACERT: certs.ca,
        NOMAD_CLIENT_CERT: certs.cert,
        NOMAD_CLIENT_KEY: certs.key,
        NOMAD_TLS_SERVER_NAME: 'server.global.nomad',
      };
    }
    service = await ServiceProcess.start({
      backends: 'pool,nomad',
      env: {
        ...nomadEnv,
        AIRFLEET_INSTANCE_NAME: 'nomad-it',
        AIRFLEET_NOMAD_DEFAULT_IMAGE: IMAGE,
        AIRFLEET_NOMAD_ALLOC_PENDING_TIMEOUT_SECONDS: String(PENDING_TIMEOUT_S),
        AIRFLEET_NOMAD_LOG_INTERVAL_MS: '1000',
        AIRFLEET_NOMAD_TICK_MS: '200',
        AIRFLEET_NOMAD_RECONNECT_MS: '200',
        AIRFLEET_NOMAD_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
        AIRFLEET_NOMAD_JOB_PREFIX: 'airfleet-it',
      },
    });
  });
  afterAll(async () => {
    await service?.stop();
    await fake?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  const submit = (body: Record<string, unknown>) =>
    service.client.request<Workload>('POST', '/v1/workloads', {
      body: { key: `nomad-${++n}-${Math.random()}`, backend: 'nomad', ...body },
    });
  const get = (id: string) => service.client.request<Workload>('GET', `/v1/workloads/${id}`);
  const waitState = (id: string, ok: (w: Workload) => boolean, what: string, timeoutMs = 60_000) =>
    waitFor(
      `workload ${id} ${what}`,
      async () => ((w) => (ok(w) ? w : null))(await get(id)),
      timeoutMs,
      () => service.process!.tail(),
    );
  const waitEnded = (id: string, timeoutMs = 60_000) => waitState(id, terminal, 'to end', timeoutMs);
  const logs = async (id: string, stream: 'stdout' | 'stderr') => {
    const response = await fetch(`${service.url}/v1/workloads/${id}/logs?stream=${stream}`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const body = (await response.json()) as { data: string };
    return Buffer.from(body.data, 'base64').toString();
  };
  const jobId = (w: Workload, attempt = 1) => `airfleet-it-${w.id}-${attempt}`;
  const registered = (id: string) => fake!.store.specs.filter((s) => JSON.parse(s).ID === id).length;

  it('runs tasks to success and to failure with their exit codes, stdout and stderr apart, then purges the job', async () => {
    const ok = await submit({ image: IMAGE, command: ['sh', '-c', 'echo "out $AIRFLEET_ATTEMPT"; echo err >&2'] });
    const bad = await submit({ image: IMAGE, command: ['sh', '-c', 'echo failing; exit 3'] });
    const [okDone, badDone] = await Promise.all([waitEnded(ok.id), waitEnded(bad.id)]);
    expect(okDone).toMatchObject({ state: 'succeeded', exitCode: 0, attempt: 1, backendRef: jobId(ok) });
    expect(badDone).toMatchObject({ state: 'failed', reason: 'task_error', exitCode: 3, attempt: 1 });
    expect(await logs(ok.id, 'stdout')).toBe('out 1\n');
    expect(await logs(ok.id, 'stderr')).toBe('err\n');
    expect(await logs(bad.id, 'stdout')).toBe('failing\n');
    // The failure's Nomad context follows the task's own stderr.
    expect(await logs(bad.id, 'stderr')).toMatch(/airfleet: .*task .*: Terminated.*\[exit_code=3/);
    if (fake) {
      await waitFor(
        'both jobs to be purged',
        async () => !fake!.store.jobs.has(`default/${jobId(ok)}`) && !fake!.store.jobs.has(`default/${jobId(bad)}`),
      );
      expect(registered(jobId(ok))).toBe(1);
      const spec = JSON.parse(fake.store.specs.find((s) => JSON.parse(s).ID === jobId(ok))!);
      expect(spec).toMatchObject({
        Type: 'batch',
        TaskGroups: [{ Count: 1, RestartPolicy: { Attempts: 0, Mode: 'fail' }, ReschedulePolicy: { Attempts: 0 } }],
      });
      expect(spec.TaskGroups[0].Tasks[0].Driver).toBe('docker');
    }
  });

  it('mounts the dags host volume read-only into the task', async () => {
    const w = await submit({
      image: IMAGE,
      command: [
        'sh',
        '-c',
        'cat /opt/airflow/dags/hello.txt; if touch /opt/airflow/dags/x 2>/dev/null; then echo writable; else echo read-only; fi',
      ],
    });
    expect(await waitEnded(w.id)).toMatchObject({ state: 'succeeded' });
    expect(await logs(w.id, 'stdout')).toBe('hello from the dags volume\nread-only\n');
  });

  fakeOnly('refuses a TLS client without a certificate, and the start-up check names TLS, then the token', async () => {
    const refused = await new Promise<string>((resolve) => {
      https
        .get(`${fake!.address}/v1/status/leader`, { ca: readFileSync(certs.ca) }, () => resolve('answered'))
        .on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    });
    expect(refused).toMatch(/CERTIFICATE_REQUIRED|ECONNRESET|EPROTO/);
    const noCert = nomadConfigFromEnv({ NOMAD_ADDR: fake!.address, NOMAD_CACERT: certs.ca });
    const client = new NomadClient(noCert);
    try {
      const problems = await nomadHealthProblems(client, noCert);
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(/^TLS: [\s\S]*NOMAD_CLIENT_CERT/);
    } finally {
      client.close();
    }
    const badToken = nomadConfigFromEnv({ ...nomadEnv, NOMAD_TOKEN: 'not-the-token', NOMAD_NAMESPACE: 'nope' });
    const other = new NomadClient(badToken);
    try {
      const problems = await nomadHealthProblems(other, badToken);
      expect(problems[0]).toMatch(/^token: Nomad refused NOMAD_TOKEN \(403/);
      expect(problems[1]).toMatch(/^namespace: /);
    } finally {
      other.close();
    }
  });

  it('fails a workload no node can take as unschedulable after the pending timeout, with the reason in its log', async () => {
    const w = await submit({ image: IMAGE, command: ['true'], resources: { memoryMb: 4_000_000 }, maxInfraRetries: 0 });
    const done = await waitEnded(w.id, 60_000);
    expect(done).toMatchObject({ state: 'failed', reason: 'unschedulable' });
    expect(done.message).toMatch(
      new RegExp(
        `longer than AIRFLEET_NOMAD_ALLOC_PENDING_TIMEOUT_SECONDS=${PENDING_TIMEOUT_S}; Nomad could not place it: .*DimensionExhausted memory`,
      ),
    );
    expect(await logs(w.id, 'stderr')).toMatch(
      /airfleet: evaluation .*placement failed: group 'airfleet': .*DimensionExhausted memory: 1/,
    );
  });

  it('fails a missing image at once as image_pull, with the driver message in the log', async () => {
    const w = await submit({ image: 'local/airfleet-no-such-image:1', command: ['true'], maxInfraRetries: 0 });
    const done = await waitEnded(w.id);
    // Not the pending timeout's unschedulable: the Driver Failure ended it.
    expect(done).toMatchObject({ state: 'failed', reason: 'image_pull' });
    expect(done.message).toMatch(/^Driver Failure: Failed to pull `local\/airfleet-no-such-image:1`/);
    expect(await logs(w.id, 'stderr')).toMatch(/Driver Failure - Failed to pull/);
  });

  it('keeps stdout and stderr complete across rotated log files, and after the purge', async () => {
    const w = await submit({ image: IMAGE, command: ['sh', '-c', 'seq 1 40000; seq 1 20000 >&2; sleep 1; echo last'] });
    const done = await waitEnded(w.id);
    expect(done.state).toBe('succeeded');
    const expectedOut = `${Array.from({ length: 40_000 }, (_, i) => i + 1).join('\n')}\nlast\n`;
    const expectedErr = `${Array.from({ length: 20_000 }, (_, i) => i + 1).join('\n')}\n`;
    if (fake) await waitFor('the job to be purged', async () => !fake!.store.jobs.has(`default/${jobId(w)}`));
    const out = await logs(w.id, 'stdout');
    expect(out.length).toBe(expectedOut.length); // > 64 KiB: several rotated files
    expect(out).toBe(expectedOut);
    expect(await logs(w.id, 'stderr')).toBe(expectedErr);
  });

  fakeOnly(
    'gives the task its secretEnv through a Nomad variable: no stored job spec holds it, and the variable goes',
    async () => {
      const secret = `s3cr3t-${Math.random().toString(36).slice(2)}`;
      const w = await submit({
        image: IMAGE,
        command: ['sh', '-c', 'test "$API_TOKEN" = "$SECOND" && echo "token length ${#API_TOKEN}"'],
        secretEnv: { API_TOKEN: secret, SECOND: secret },
      });
      expect(await waitEnded(w.id)).toMatchObject({ state: 'succeeded' });
      expect(await logs(w.id, 'stdout')).toBe(`token length ${secret.length}\n`);
      expect(fake!.store.specs.length).toBeGreaterThan(0);
      for (const spec of fake!.store.specs) expect(spec).not.toContain(secret);
      expect(fake!.store.specs.find((s) => s.includes(jobId(w)))).toContain(`nomadVar \\"nomad/jobs/${jobId(w)}\\"`);
      await waitFor(
        'the variable to be deleted',
        async () => !fake!.store.vars.has(`default/nomad/jobs/${jobId(w)}`),
        10_000,
      );
    },
  );

  it('re-attaches a job after the service is SIGKILLed, learns how it ended meanwhile, without a second submission', async () => {
    const w = await submit({ image: IMAGE, command: ['sh', '-c', 'echo begin; sleep 4; echo end'] });
    await waitState(w.id, (x) => x.state === 'running', 'to run');
    await service.process!.kill('SIGKILL');
    // The task ends while no service watches it (its end is then only in Nomad's state, not in the stream).
    if (fake) {
      await waitFor('the task to end at Nomad', async () =>
        [...fake!.store.allocs.values()].some((a) => a.JobID === jobId(w) && a.ClientStatus === 'complete'),
      );
    }
    await service.restart();
    const done = await waitEnded(w.id, 90_000);
    expect(done).toMatchObject({ state: 'succeeded', attempt: 1, backendRef: jobId(w) });
    expect(await logs(w.id, 'stdout')).toBe('begin\nend\n');
    if (fake) {
      expect(registered(jobId(w))).toBe(1);
      expect(registered(jobId(w, 2))).toBe(0);
    }
  });

  fakeOnly('resumes a dropped event stream without missing the transition made meanwhile', async () => {
    const w = await submit({ image: IMAGE, command: ['sh', '-c', 'echo started; sleep 2; exit 5'] });
    await waitState(w.id, (x) => x.state === 'running', 'to run');
    const streamsBefore = fake!.calls.get('GET /v1/event') ?? 0;
    // The stream is cut and refused for 4 s, during which the task ends.
    fake!.faults.dropStreams(4_000);
    const done = await waitEnded(w.id, 60_000);
    expect(done).toMatchObject({ state: 'failed', reason: 'task_error', exitCode: 5 });
    expect(fake!.calls.get('GET /v1/event') ?? 0).toBeGreaterThan(streamsBefore);
    expect(await logs(w.id, 'stdout')).toBe('started\n');
  });

  fakeOnly("resyncs with Nomad's filter: another team's job on the cluster is not listed to airfleet", async () => {
    const client = new NomadClient(nomadConfigFromEnv(nomadEnv));
    const foreign = 'other-team-etl';
    await client.request('PUT', '/v1/jobs', {
      body: {
        Job: {
          ID: foreign,
          Name: foreign,
          Type: 'batch',
          Datacenters: ['*'],
          TaskGroups: [
            {
              Name: 'etl',
              Count: 1,
              Tasks: [{ Name: 'etl', Driver: 'docker', Config: { image: IMAGE, command: 'true' } }],
            },
          ],
        },
      },
    });
    const w = await submit({ image: IMAGE, command: ['sh', '-c', 'echo started; sleep 2'] });
    await waitState(w.id, (x) => x.state === 'running', 'to run');
    const everything = await client.request<Array<{ JobID: string }>>('GET', '/v1/allocations');
    expect(everything.data.map((a) => a.JobID)).toEqual(expect.arrayContaining([foreign, jobId(w)]));
    const filter = 'JobID matches "^airfleet-it-"';
    const ours = await client.request<Array<{ JobID: string }>>('GET', '/v1/allocations', { query: { filter } });
    expect(ours.data.map((a) => a.JobID)).toContain(jobId(w));
    expect(ours.data.map((a) => a.JobID)).not.toContain(foreign);
    // An expression the fake cannot read is refused, as Nomad refuses one it cannot parse, never ignored.
    await expect(
      client.request('GET', '/v1/evaluations', { query: { filter: 'JobID contains "x"' } }),
    ).rejects.toMatchObject({ status: 400 });

    // The service's resync after a dropped stream asks with the filter, and never for every allocation.
    const unfilteredBefore = fake!.calls.get('GET /v1/allocations') ?? 0;
    const filteredBefore = fake!.calls.get('GET /v1/allocations filtered') ?? 0;
    fake!.faults.dropStreams(500);
    expect(await waitEnded(w.id)).toMatchObject({ state: 'succeeded' });
    await waitFor(
      'a resync',
      async () => ((fake!.calls.get('GET /v1/allocations filtered') ?? 0) > filteredBefore ? true : null),
      10_000,
    );
    expect(fake!.calls.get('GET /v1/allocations') ?? 0).toBe(unfilteredBefore);
    await client.request('DELETE', `/v1/job/${foreign}`, { query: { purge: true } });
    client.close();
  });

  it('cancels a running task: the job is stopped and the workload ends cancelled', async () => {
    const w = await submit({ image: IMAGE, command: ['sh', '-c', 'echo started; sleep 60'] });
    await waitState(w.id, (x) => x.state === 'running', 'to run');
    await waitFor('the first output to be copied', async () => (await logs(w.id, 'stdout')) === 'started\n', 20_000);
    await service.client.request('POST', `/v1/workloads/${w.id}/cancel`);
    expect(await waitEnded(w.id)).toMatchObject({ state: 'cancelled' });
    expect(await logs(w.id, 'stderr')).toMatch(/airfleet: nomad job .* was stopped on request/);
  });

  fakeOnly('fails an OOM-killed task as oom and a task on a lost node as lost', async () => {
    const oom = await submit({ image: IMAGE, command: ['sh', '-c', 'echo eating; sleep 30'] });
    fake!.faults.oom(jobId(oom));
    const oomDone = await waitEnded(oom.id);
    expect(oomDone).toMatchObject({ state: 'failed', reason: 'oom', exitCode: 137 });
    const lost = await submit({ image: IMAGE, command: ['sh', '-c', 'echo working; sleep 30'], maxInfraRetries: 0 });
    await waitState(lost.id, (x) => x.state === 'running', 'to run');
    fake!.faults.loseNode();
    try {
      const lostDone = await waitEnded(lost.id);
      expect(lostDone).toMatchObject({ state: 'failed', reason: 'lost' });
      expect(lostDone.message).toMatch(/was lost with node fake-client-1: alloc is lost since its node is down/);
    } finally {
      fake!.faults.restoreNode();
    }
  });

  fakeOnly(
    'watches 200 concurrent jobs over a bounded number of connections, with under 2 watch requests per job',
    async () => {
      const before = new Map(fake!.calls);
      fake!.connections.peak = fake!.connections.open;
      const started = Date.now();
      const answer = await service.client.request<{ results: Array<{ workload: Workload }> }>(
        'POST',
        '/v1/workloads/batch',
        {
          body: {
            workloads: Array.from({ length: 200 }, (_, i) => ({
              key: `nomad-many-${i}-${Math.random()}`,
              backend: 'nomad',
              image: IMAGE,
              command: ['true'],
            })),
          },
        },
      );
      const ids = answer.results.map((r) => r.workload.id);
      let last: Workload[] = [];
      const states = await waitFor(
        'all 200 to end',
        async () => {
          const page = await service.client.request<{ workloads: Workload[] }>(
            'GET',
            '/v1/workloads?backend=nomad&limit=1000',
          );
          const mine = page.workloads.filter((w) => ids.includes(w.id));
          last = mine;
          return mine.length === 200 && mine.every(terminal) ? mine : null;
        },
        100_000,
        () => {
          const byState = new Map<string, number>();
          for (const w of last) byState.set(w.state, (byState.get(w.state) ?? 0) + 1);
          const allocs = new Map<string, number>();
          for (const a of fake!.store.allocs.values())
            allocs.set(a.ClientStatus, (allocs.get(a.ClientStatus) ?? 0) + 1);
          return `workloads ${JSON.stringify([...byState])}; fake allocations ${JSON.stringify([...allocs])}; calls ${JSON.stringify([...fake!.calls])}\n${service.process!.tail(40)}`;
        },
      );
      expect(
        states
          .filter((w) => w.state !== 'succeeded')
          .map((w) => ({ id: w.id, attempt: w.attempt, reason: w.reason, message: w.message })),
      ).toEqual([]);
      const delta = (route: string) => (fake!.calls.get(route) ?? 0) - (before.get(route) ?? 0);
      const watch = [
        'GET /v1/allocations',
        'GET /v1/allocations filtered',
        'GET /v1/evaluations',
        'GET /v1/evaluations filtered',
        'GET /v1/event/stream',
        'GET /v1/job',
        'GET /v1/allocation',
      ];
      const watchRequests = watch.reduce((s, r) => s + delta(r), 0);
      const all = [...fake!.calls.keys()].reduce((s, r) => s + delta(r), 0);
      console.info(
        `nomad: 200 jobs in ${Date.now() - started} ms; peak ${fake!.connections.peak} connections; ${(watchRequests / 200).toFixed(3)} watch and ${(all / 200).toFixed(2)} requests in all per job`,
      );
      const perRoute = [...fake!.calls.keys()].map((r) => `${r} ${(delta(r) / 200).toFixed(2)}`).join(', ');
      const retried = states.filter((w) => w.attempt > 1).length;
      console.info(`nomad: requests per job by route: ${perRoute}; ${retried} workloads needed a second attempt`);
      // Never two jobs for one attempt, whatever was retried.
      for (const w of states) expect(registered(jobId(w, w.attempt))).toBe(1);
      expect(watchRequests / 200).toBeLessThan(2);
      // The backend's pool plus its event stream (and the suite's own reads of nothing: it reads the fake in memory).
      expect(fake!.connections.peak).toBeLessThanOrEqual(MAX_CONNECTIONS + 1);
    },
    150_000,
  );
});
