import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type NomadApiError, NomadClient } from '../../executor/src/backends/nomad/nomad-client.ts';
import { nomadConfigFromEnv } from '../../executor/src/backends/nomad/nomad-config.ts';
import type { NomadJob } from '../../executor/src/backends/nomad/nomad-types.ts';
import { ServiceProcess, waitFor } from '../src/airfleet-process.ts';
import { projectImage } from '../src/docker-env.ts';
import { NOMAD_TLS_SERVER_NAME, nomadTestCerts } from '../src/nomad-fake/certs.ts';
import { type NomadFake, startNomadFake } from '../src/nomad-fake/index.ts';
import { freePort } from '../src/ports.ts';
import { killedTasks, markerCommand, startCount, tasksEnded } from '../src/task-markers.ts';

/**
 * The autoscaler's Nomad driver against THE NOMAD FAKE (integration/src/nomad-fake/, the one fake allowed),
 * over mutual TLS with an ACL token read from a file. The worker pool is a Nomad service job whose task is
 * the real `airfleet worker` command line in the executor image: the fake runs each allocation as a Docker
 * container, its name and `nomad.alloc` label interpolated from NOMAD_* runtime variables, the enrollment
 * token from a Nomad variable (never in the job). A backlog raises the group's count to the max, the workers
 * run every task once, and once the backlog is gone and the scale-in cooldown has passed the count goes back
 * to the min by removing drained workers only: Nomad (the fake, as Nomad's scheduler) stops the
 * highest-indexed allocations, which are the ones the driver chose.
 *
 * Sizes for CI time (the suite must stay under 90 s on the 2-core machine): AUTOSCALE_NOMAD_TASKS tasks
 * (default 5) of AUTOSCALE_NOMAD_TASK_SECONDS (3) with at most AUTOSCALE_NOMAD_MAX_WORKERS (3) workers and a
 * AUTOSCALE_NOMAD_COOLDOWN_SECONDS (5) scale-in cooldown.
 */
const TASKS = Number(process.env.AUTOSCALE_NOMAD_TASKS ?? 5);
const TASK_SECONDS = Number(process.env.AUTOSCALE_NOMAD_TASK_SECONDS ?? 3);
const MAX_WORKERS = Number(process.env.AUTOSCALE_NOMAD_MAX_WORKERS ?? 3);
const COOLDOWN_SECONDS = Number(process.env.AUTOSCALE_NOMAD_COOLDOWN_SECONDS ?? 5);

const JOB = 'airfleet-workers';
const GROUP = 'worker';
const NOMAD_TOKEN = `nomad-${randomBytes(12).toString('hex')}`;

interface Sample {
  at: number;
  count: number;
  running: number;
}

interface WorkerView {
  name: string;
  state: string;
  labels: Record<string, string>;
  maintenanceComment: string | null;
}

describe('autoscaler on Nomad (the fake)', () => {
  let fake: NomadFake;
  let nomad: NomadClient;
  let service: ServiceProcess;
  let dir: string;
  let markers: string;
  let enrollToken: string;
  const started = Date.now();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'airfleet-autoscale-nomad-'));
    markers = join(dir, 'markers');
    execFileSync('mkdir', ['-p', markers]);
    chmodSync(markers, 0o777); // the image's worker runs as its own user
    const tls = nomadTestCerts(dir);
    fake = await startNomadFake({
      tls: tls.server,
      token: NOMAD_TOKEN,
      hostVolumes: { markers: { path: markers, readOnly: false } },
    });
    nomad = new NomadClient(
      nomadConfigFromEnv({
        NOMAD_ADDR: fake.address,
        NOMAD_TOKEN,
        NOMAD_CACERT: tls.ca,
        NOMAD_CLIENT_CERT: tls.cert,
        NOMAD_CLIENT_KEY: tls.key,
        NOMAD_TLS_SERVER_NAME,
      }),
    );
    const tokenFile = join(dir, 'nomad.token');
    writeFileSync(tokenFile, `${NOMAD_TOKEN}\n`, { mode: 0o600 });
    const wrongTokenFile = join(dir, 'wrong.token');
    writeFileSync(wrongTokenFile, 'not-the-token\n', { mode: 0o600 });

    const port = await freePort();
    enrollToken = `aft_${randomBytes(9).toString('hex')}_${randomBytes(24).toString('base64url')}`;
    const connection = {
      address: fake.address,
      caCertFile: tls.ca,
      clientCertFile: tls.cert,
      clientKeyFile: tls.key,
      tlsServerName: NOMAD_TLS_SERVER_NAME,
      tokenFile,
    };
    const pool = (name: string, queue: string, job: string, extra: Record<string, unknown> = {}) => ({
      name,
      queues: [queue],
      slotsPerWorker: 1,
      minWorkers: 1,
      maxWorkers: MAX_WORKERS,
      scaleOutCooldownSeconds: 2,
      scaleInCooldownSeconds: COOLDOWN_SECONDS,
      hysteresisSlots: 0,
      drainTimeoutSeconds: 60,
      driver: { kind: 'nomad', job, group: GROUP, ...connection, stopTimeoutSeconds: 45, ...extra },
    });
    const starting = ServiceProcess.start({
      port,
      heartbeatIntervalMs: 1_000,
      heartbeatTimeoutMs: 30_000,
      env: {
        AIRFLEET_LEASE_ACK_TIMEOUT_MS: '15000',
        AIRFLEET_AUTOSCALE_INTERVAL_MS: '1000',
        AIRFLEET_ENROLL_TOKEN: enrollToken,
        AIRFLEET_POOLS: JSON.stringify([
          pool('nomad', 'nburst', JOB),
          // A pool whose job does not exist: its status says what to fix, the other pool is not held up.
          pool('ghost', 'ghost', 'no-such-job'),
          // A token Nomad refuses, and TLS without the client certificate the agent requires.
          pool('badtoken', 'badtoken', JOB, { tokenFile: wrongTokenFile }),
          pool('notls', 'notls', JOB, { clientCertFile: undefined, clientKeyFile: undefined }),
        ]),
      },
    }).then((s) => {
      service = s; // for afterAll, even if what follows fails
      return s;
    });
    // The enrollment token reaches the workers through a Nomad variable, rendered into their env.
    await nomad.request('PUT', `/v1/var/nomad/jobs/${JOB}`, {
      body: { Items: { AIRFLEET_TOKEN: enrollToken } },
    });
    await nomad.request('POST', '/v1/jobs', { body: { Job: workerJob(port) } });
    service = await starting;
    await waitFor(
      'the minimum worker to register',
      async () => (await workers()).some((w) => w.state === 'idle' && w.labels['airfleet.pool'] === 'nomad'),
      90_000,
      () => service.process!.tail(),
    );
  }, 180_000);

  afterAll(async () => {
    // The service first (its autoscaler calls the fake every second), then the job, so no worker container
    // is left running when the fake goes.
    await service?.stop();
    if (fake) {
      await nomad.request('DELETE', `/v1/job/${JOB}`).catch(() => undefined);
      await waitFor(
        'the worker allocations to end',
        async () => [...fake.store.allocs.values()].every((a) => !['pending', 'running'].includes(a.ClientStatus)),
        30_000,
      ).catch(() => undefined);
    }
    nomad?.close();
    await fake?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const workers = async () =>
    (await service.client.request<{ workers: WorkerView[] }>('GET', '/v1/workers')).workers.filter(
      (w) => w.labels['airfleet.pool'] === 'nomad',
    );

  /** The worker pool as a Nomad service job: the real `airfleet worker` in the executor image. */
  function workerJob(port: number): NomadJob {
    return {
      ID: JOB,
      Name: JOB,
      Type: 'service',
      Datacenters: ['*'],
      TaskGroups: [
        {
          Name: GROUP,
          Count: 1,
          Volumes: { markers: { Name: 'markers', Type: 'host', Source: 'markers', ReadOnly: false } },
          Tasks: [
            {
              Name: 'worker',
              Driver: 'docker',
              Config: {
                image: projectImage('executor'),
                // The image's entrypoint is `tini -- airfleet`.
                args: ['worker', '--queues', 'nburst', '--concurrency', '1', '--drain-timeout', '60'],
              },
              Env: {
                AIRFLEET_API_URL: `http://127.0.0.1:${port}`,
                // biome-ignore lint/suspicious/noTemplateCurlyInString: Nomad interpolates its runtime variables
                AIRFLEET_WORKER_NAME: '${NOMAD_GROUP_NAME}-${NOMAD_ALLOC_INDEX}-${NOMAD_SHORT_ALLOC_ID}',
                // biome-ignore lint/suspicious/noTemplateCurlyInString: Nomad interpolates its runtime variables
                AIRFLEET_WORKER_LABELS: 'airfleet.pool=nomad,nomad.alloc=${NOMAD_ALLOC_ID}',
                AIRFLEET_LOG_LEVEL: 'info',
              },
              Templates: [
                {
                  EmbeddedTmpl: `{{ with nomadVar "nomad/jobs/${JOB}" }}{{ range $k, $v := . }}{{ $k }}={{ $v | toJSON }}\n{{ end }}{{ end }}`,
                  DestPath: 'secrets/worker.env',
                  Envvars: true,
                },
              ],
              VolumeMounts: [{ Volume: 'markers', Destination: '/markers', ReadOnly: false }],
              // SIGINT: the worker drains (it holds nothing by then) and deregisters.
              KillSignal: 'SIGINT',
              KillTimeout: 30e9,
              Resources: { CPU: 200, MemoryMB: 256 },
            },
          ],
        },
      ],
    };
  }

  const sample = (): Sample => {
    const job = fake.store.jobs.get(`default/${JOB}`)!;
    const count = job.TaskGroups!.find((g) => g.Name === GROUP)!.Count ?? 0;
    const running = [...fake.store.allocs.values()].filter(
      (a) => a.JobID === JOB && a.TaskGroup === GROUP && a.ClientStatus === 'running',
    ).length;
    return { at: Date.now(), count, running };
  };

  it('the scale endpoint answers as Nomad does: job not found, unknown group, negative count', async () => {
    const scale = (job: string, body: unknown) =>
      nomad.request('POST', `/v1/job/${job}/scale`, { body }).then(
        () => null,
        (e: NomadApiError) => `${e.status} ${e.message}`,
      );
    expect(await scale('no-such-job', { Count: 2, Target: { Group: GROUP }, Message: 'x' })).toMatch(
      /^404 .*job "no-such-job" not found/,
    );
    expect(await scale(JOB, { Count: 2, Target: { Group: 'nope' }, Message: 'x' })).toMatch(
      /^400 .*task group "nope" specified for scaling does not exist in job/,
    );
    expect(await scale(JOB, { Count: -1, Target: { Group: GROUP }, Message: 'x' })).toMatch(
      /^400 .*scaling action count can't be negative/,
    );
    expect(await scale(JOB, { Count: 2, Message: 'x' })).toMatch(/^400 .*missing task group name/);
    const missing = await nomad.request('GET', '/v1/job/no-such-job/scale').catch((e: NomadApiError) => e.status);
    expect(missing).toBe(404);
    // Nothing changed the real job.
    expect(sample().count).toBe(1);
  });

  it('a backlog raises the group count to the max, and back to the min after the cooldown, removing drained workers only', async () => {
    const samples: Sample[] = [sample()];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push(sample());
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    const run = randomBytes(4).toString('hex');
    const keys = Array.from({ length: TASKS }, (_, i) => `nomad-${run}-${i}`);
    const burstAt = Date.now();
    await service.client.request('POST', '/v1/workloads/batch', {
      body: {
        workloads: keys.map((key) => ({
          key,
          queue: 'nburst',
          command: markerCommand(key, TASK_SECONDS),
        })),
      },
    });
    // Every worker of the max registered, each naming its own live allocation.
    const atMax = await waitFor(
      `${MAX_WORKERS} workers registered`,
      async () => {
        const ws = (await workers()).filter((w) => w.state === 'idle' || w.state === 'running');
        return ws.length === MAX_WORKERS ? ws : null;
      },
      90_000,
      () => service.process!.tail(40),
    );
    const liveAllocs = [...fake.store.allocs.values()].filter(
      (a) => a.JobID === JOB && a.DesiredStatus === 'run' && a.ClientStatus === 'running',
    );
    expect(new Set(atMax.map((w) => w.labels['nomad.alloc']))).toEqual(new Set(liveAllocs.map((a) => a.ID)));

    const finals = await tasksEnded(service, keys, 90_000);
    const doneAt = Date.now();
    await waitFor(
      'the group to scale back to the minimum',
      async () => {
        const s = sample();
        const gone = (await workers()).filter((w) => w.state === 'offline');
        return s.count === 1 && s.running === 1 && gone.length >= MAX_WORKERS - 1;
      },
      90_000,
      () => service.process!.tail(40),
    );
    const backAt = Date.now();
    sampling = false;
    await sampler;

    const killed = killedTasks(markers, finals);
    const all = await workers();
    const removed = all.filter((w) => w.state === 'offline');
    const status = (
      await nomad.request<{
        TaskGroups: Record<
          string,
          { Desired: number; Running: number; Events: Array<{ Count: number; Message: string }> | null }
        >;
      }>('GET', `/v1/job/${JOB}/scale`)
    ).data;
    const figures = {
      sizes: `${TASKS} tasks of ${TASK_SECONDS} s, max ${MAX_WORKERS} workers, ${COOLDOWN_SECONDS} s scale-in cooldown`,
      burstToMaxWorkersSeconds: ((samples.find((s) => s.running >= MAX_WORKERS)?.at ?? Number.NaN) - burstAt) / 1000,
      peakCount: Math.max(...samples.map((s) => s.count)),
      peakRunning: Math.max(...samples.map((s) => s.running)),
      lastTaskDoneToMinSeconds: (backAt - doneAt) / 1000,
      tasksKilled: killed.length,
      workersRemoved: removed.map((w) => w.name),
      scalingEvents: (status.TaskGroups[GROUP]?.Events ?? []).map((e) => `${e.Count}: ${e.Message}`),
      suiteSeconds: (Date.now() - started) / 1000,
    };
    console.info(`autoscale-nomad figures: ${JSON.stringify(figures, null, 2)}`);

    // Every task ran once and succeeded: nothing was killed by the scale-in.
    expect(killed.map((w) => `${w.key}: ${w.state} ${w.reason ?? ''} starts ${startCount(markers, w.key)}`)).toEqual(
      [],
    );
    // The count rose to the max the backlog needs (bounded by it), never past, and came back to the min.
    expect(Math.max(...samples.map((s) => s.count))).toBe(MAX_WORKERS);
    expect(Math.max(...samples.map((s) => s.running))).toBe(MAX_WORKERS);
    expect(status.TaskGroups[GROUP]).toMatchObject({ Desired: 1, Running: 1 });
    // The scale-in took exactly the workers it drained: each left cleanly, with the autoscaler's comment;
    // the one left is the lowest-indexed allocation, which Nomad keeps.
    expect(removed.map((w) => `${w.state}: ${w.maintenanceComment}`)).toEqual(
      removed.map(() => 'offline: autoscaler: scale-in of pool nomad'),
    );
    const left = all.filter((w) => w.state === 'idle');
    expect(left).toHaveLength(1);
    const keptAlloc = fake.store.allocs.get(left[0]!.labels['nomad.alloc']!);
    expect(keptAlloc).toMatchObject({ DesiredStatus: 'run', ClientStatus: 'running', Name: `${JOB}.${GROUP}[0]` });
    expect(service.process!.output.join('')).not.toContain('Nomad stopped allocations of live workers');
    // What Nomad recorded: the autoscaler's scale-out and scale-in, with their reasons.
    const messages = (status.TaskGroups[GROUP]?.Events ?? []).map((e) => e.Message);
    expect(messages.some((m) => m.includes(`pool nomad scales out to ${MAX_WORKERS}`))).toBe(true);
    expect(messages.some((m) => m.includes('pool nomad scales in to 1, removing drained workers'))).toBe(true);
    // The enrollment token and the Nomad token never reached a job spec.
    expect(fake.store.specs.some((s) => s.includes(enrollToken) || s.includes(NOMAD_TOKEN))).toBe(false);
    // The pool whose job does not exist says what to fix; the other pool was not held up by it.
    const pools = await service.client.request<{
      pools: Array<{ name: string; status: { error: string | null; target: number } | null }>;
    }>('GET', '/v1/pools');
    expect(pools.pools.find((p) => p.name === 'ghost')?.status?.error).toContain(
      "Nomad job 'no-such-job' in namespace 'default': the job does not exist: register the worker job",
    );
    expect(pools.pools.find((p) => p.name === 'badtoken')?.status?.error).toContain(
      'Nomad refused the token (403 Permission denied): give the driver (tokenFile or NOMAD_TOKEN) an ACL token',
    );
    expect(pools.pools.find((p) => p.name === 'notls')?.status?.error).toMatch(
      /: TLS: .*NOMAD_CLIENT_CERT.*driver fields address, caCertFile, clientCertFile/s,
    );
    expect(pools.pools.find((p) => p.name === 'nomad')?.status).toMatchObject({ error: null, target: 1 });
    // No error names the token.
    expect(JSON.stringify(pools)).not.toContain(NOMAD_TOKEN);
  }, 240_000);
});
