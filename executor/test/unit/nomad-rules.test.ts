import { observeAllocation, placementFailure } from '../../src/backends/nomad/alloc-status.ts';
import { jobPrefixFilter } from '../../src/backends/nomad/event-watcher.ts';
import { nomadExecConfig } from '../../src/backends/nomad/exec-config.ts';
import { buildJob, JobSpecError, jobFromJson, parseJobId } from '../../src/backends/nomad/job-spec.ts';
import { nomadConfigFromEnv } from '../../src/backends/nomad/nomad-config.ts';
import type { Allocation, TaskEvent } from '../../src/backends/nomad/nomad-types.ts';
import { type Workload, workloadInput } from '../../src/domain/workload.ts';
import { ConfigError } from '../../src/errors.ts';

const workload = (over: Partial<Workload> = {}): Workload =>
  ({
    id: '0b6e2f0a-1111-4222-8333-944455556666',
    command: ['sh', '-c', 'echo hi'],
    image: 'local/debian:bookworm-slim',
    env: { A: '1' },
    resources: {},
    execConfig: {},
    queue: 'default',
    ...over,
  }) as Workload;

const alloc = (status: string, events: TaskEvent[], over: Partial<Allocation> = {}): Allocation => ({
  ID: 'a1',
  JobID: 'airfleet-x-1',
  ClientStatus: status,
  DesiredStatus: 'run',
  TaskStates: {
    task: { State: status === 'running' ? 'running' : 'dead', Failed: status === 'failed', Events: events },
  },
  ...over,
});

describe('nomad configuration', () => {
  it('reads Nomad own variables with defaults', () => {
    const c = nomadConfigFromEnv({ NOMAD_ADDR: 'http://127.0.0.1:4646', NOMAD_NAMESPACE: 'airflow' });
    expect(c).toMatchObject({ namespace: 'airflow', datacenters: ['*'], allocPendingTimeoutSeconds: 600 });
    expect(c.hostVolumes).toEqual({ config: '/opt/airflow/config', dags: '/opt/airflow/dags' });
  });

  it('lists every problem at once, naming the variable', () => {
    let error: unknown;
    try {
      nomadConfigFromEnv({
        NOMAD_ADDR: 'ftp://x',
        NOMAD_CLIENT_CERT: '/nonexistent/cert.pem',
        AIRFLEET_NOMAD_ALLOC_PENDING_TIMEOUT_SECONDS: 'soon',
        AIRFLEET_NOMAD_MAX_CONNECTIONS: '500',
        AIRFLEET_NOMAD_HOST_VOLUMES: 'dags',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/NOMAD_CLIENT_CERT=\/nonexistent\/cert.pem: cannot read the file/);
    expect(message).toMatch(/a client certificate and its key go together: set NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY/);
    expect(message).toMatch(/AIRFLEET_NOMAD_ALLOC_PENDING_TIMEOUT_SECONDS=soon is not a number/);
    expect(message).toMatch(/AIRFLEET_NOMAD_MAX_CONNECTIONS: /);
    expect(message).toMatch(/AIRFLEET_NOMAD_HOST_VOLUMES: 'dags' must be <volume>=<absolute path/);
  });

  it('takes the TLS material as PEM values (ECS secrets) as well as files, never both', () => {
    const pem = (what: string) => `-----BEGIN ${what}-----\nMIIB\n-----END ${what}-----\n`;
    const c = nomadConfigFromEnv({
      NOMAD_ADDR: 'https://nomad.internal:4646',
      AIRFLEET_NOMAD_CACERT_PEM: pem('CERTIFICATE'),
      AIRFLEET_NOMAD_CLIENT_CERT_PEM: pem('CERTIFICATE'),
      AIRFLEET_NOMAD_CLIENT_KEY_PEM: pem('PRIVATE KEY'),
    });
    expect(c).toMatchObject({ caCert: pem('CERTIFICATE'), clientKey: pem('PRIVATE KEY') });
    expect(() =>
      nomadConfigFromEnv({
        NOMAD_ADDR: 'https://nomad.internal:4646',
        NOMAD_CACERT: '/etc/ca.pem',
        AIRFLEET_NOMAD_CACERT_PEM: pem('CERTIFICATE'),
        AIRFLEET_NOMAD_CLIENT_CERT_PEM: '/etc/client.pem',
        AIRFLEET_NOMAD_CLIENT_KEY_PEM: pem('PRIVATE KEY'),
      }),
    ).toThrow(
      /NOMAD_CACERT \(a file\) and AIRFLEET_NOMAD_CACERT_PEM \(the PEM itself\) are both set[\s\S]*AIRFLEET_NOMAD_CLIENT_CERT_PEM does not hold PEM text/,
    );
  });
});

describe('nomad job of one attempt', () => {
  const config = nomadConfigFromEnv({ NOMAD_ADDR: 'http://127.0.0.1:4646' });

  it('is one batch group and task that never restarts or reschedules, with no secret in it', () => {
    const job = buildJob(
      workload({ resources: { cpu: 0.5, memoryMb: 256, gpus: 1 } }),
      2,
      config,
      null,
      {},
      'nomad/jobs/j',
    );
    expect(job).toMatchObject({ ID: 'airfleet-0b6e2f0a-1111-4222-8333-944455556666-2', Type: 'batch' });
    const group = job.TaskGroups![0]!;
    expect(group).toMatchObject({
      Count: 1,
      RestartPolicy: { Attempts: 0, Mode: 'fail' },
      ReschedulePolicy: { Attempts: 0, Unlimited: false },
    });
    const task = group.Tasks![0]!;
    expect(task.Driver).toBe('docker');
    expect(task.Config).toMatchObject({ image: 'local/debian:bookworm-slim', command: 'sh', args: ['-c', 'echo hi'] });
    expect(task.Resources).toEqual({ CPU: 500, MemoryMB: 256, Devices: [{ Name: 'nvidia/gpu', Count: 1 }] });
    expect(task.VolumeMounts).toEqual([
      { Volume: 'config', Destination: '/opt/airflow/config', ReadOnly: true },
      { Volume: 'dags', Destination: '/opt/airflow/dags', ReadOnly: true },
    ]);
    expect(task.Templates?.[0]?.EmbeddedTmpl).toContain('nomadVar "nomad/jobs/j"');
    expect(job.Meta).toMatchObject({ airfleet_workload_id: workload().id, airfleet_attempt: '2' });
    expect(parseJobId('airfleet', job.ID!)).toEqual({ workloadId: workload().id, attempt: 2 });
  });

  it('lays execConfig.nomad over a template and checks mounts against its volumes', () => {
    const template = jobFromJson(
      JSON.stringify({
        Job: {
          TaskGroups: [
            {
              Name: 'g',
              Volumes: { scratch: { Type: 'host', Source: 'scratch', ReadOnly: false } },
              Tasks: [{ Name: 't', Driver: 'docker', Config: { image: 'tmpl:1' }, Env: { T: 'x' } }],
            },
          ],
        },
      }),
      'test',
    );
    const exec = nomadExecConfig.parse({
      resources: { cores: 2, memoryMb: 512, memoryMaxMb: 1024, devices: [{ name: 'nvidia/gpu', count: 2 }] },
      ephemeralDiskMb: 300,
      volumeMounts: [{ volume: 'scratch', destination: '/scratch', readOnly: false }],
      constraints: [{ attribute: '${attr.kernel.name}', value: 'linux' }],
      meta: { team: 'data' },
    });
    const job = buildJob(workload({ image: null }), 1, config, template, exec, null);
    const task = job.TaskGroups![0]!.Tasks![0]!;
    expect(task.Config!.image).toBe('tmpl:1');
    expect(task.Resources).toEqual({
      Cores: 2,
      MemoryMB: 512,
      MemoryMaxMB: 1024,
      Devices: [{ Name: 'nvidia/gpu', Count: 2 }],
    });
    expect(task.VolumeMounts).toEqual([{ Volume: 'scratch', Destination: '/scratch', ReadOnly: false }]);
    expect(task.Constraints).toEqual([{ LTarget: '${attr.kernel.name}', Operand: '=', RTarget: 'linux' }]);
    expect(task.Templates).toEqual([]);
    expect(job.TaskGroups![0]!.EphemeralDisk).toEqual({ SizeMB: 300 });
    expect(() =>
      buildJob(
        workload(),
        1,
        config,
        template,
        nomadExecConfig.parse({ volumeMounts: [{ volume: 'dags', destination: '/d' }] }),
        null,
      ),
    ).toThrow(/execConfig.nomad.volumeMounts.0.volume: 'dags' is not a volume of the job template \(it has: scratch\)/);
    expect(() => buildJob(workload({ image: null }), 1, config, null, {}, null)).toThrow(JobSpecError);
  });

  it('refuses bad overrides at the edge, naming the field', () => {
    const parsed = workloadInput.safeParse({
      key: 'k',
      command: ['true'],
      backend: 'nomad',
      execConfig: { nomad: { resources: { cpu: 100, cores: 2 }, volumeMounts: [{ volume: 'x', destination: 'rel' }] } },
    });
    expect(parsed.success).toBe(false);
    const paths = parsed.error!.issues.map((i) => i.path.join('.'));
    expect(paths).toContain('execConfig.nomad.resources');
    expect(paths).toContain('execConfig.nomad.volumeMounts.0.destination');
  });
});

describe('nomad allocation analysis (task event type strings as Nomad writes them)', () => {
  it('maps running, success and a failing exit code', () => {
    expect(observeAllocation(alloc('pending', [{ Type: 'Received' }]), false)).toEqual({ kind: 'waiting' });
    expect(observeAllocation(alloc('running', [{ Type: 'Started' }]), false)).toEqual({ kind: 'running' });
    const done = [{ Type: 'Started' }, { Type: 'Terminated', Details: { exit_code: '0', oom_killed: 'false' } }];
    expect(observeAllocation(alloc('complete', done), false)).toEqual({ kind: 'succeeded', exitCode: 0 });
    const failed = [{ Type: 'Started' }, { Type: 'Terminated', Details: { exit_code: '3', oom_killed: 'false' } }];
    expect(observeAllocation(alloc('failed', failed), false)).toMatchObject({
      kind: 'failed',
      reason: 'task_error',
      exitCode: 3,
      started: true,
    });
  });

  it('tells image pulls from other driver failures, OOM kills and lost nodes', () => {
    const pull = {
      Type: 'Driver Failure',
      DisplayMessage: 'Failed to pull `nope:1`: Error response from daemon: manifest unknown',
    };
    expect(observeAllocation(alloc('failed', [{ Type: 'Received' }, pull]), false)).toMatchObject({
      reason: 'image_pull',
      started: false,
    });
    const driver = { Type: 'Driver Failure', DisplayMessage: 'failed to create container: invalid mount config' };
    expect(observeAllocation(alloc('failed', [driver]), false)).toMatchObject({ reason: 'driver', started: false });
    const oom = [{ Type: 'Started' }, { Type: 'Terminated', Details: { exit_code: '137', oom_killed: 'true' } }];
    expect(observeAllocation(alloc('failed', oom), false)).toMatchObject({ reason: 'oom', exitCode: 137 });
    const lost = alloc('lost', [{ Type: 'Started' }], { DesiredDescription: 'alloc is lost since its node is down' });
    expect(observeAllocation(lost, false)).toMatchObject({ reason: 'lost', started: true });
    const killed = [{ Type: 'Started' }, { Type: 'Killing' }, { Type: 'Killed' }];
    expect(observeAllocation(alloc('complete', killed, { DesiredStatus: 'stop' }), true)).toMatchObject({
      kind: 'cancelled',
    });
  });

  it('says why nothing was placed', () => {
    expect(
      placementFailure({
        ID: 'e',
        JobID: 'j',
        Status: 'complete',
        FailedTGAllocs: {
          g: { NodesEvaluated: 2, NodesExhausted: 2, DimensionExhausted: { memory: 2 }, ConstraintFiltered: {} },
        },
      }),
    ).toBe("group 'g': 2 nodes evaluated, 2 exhausted, DimensionExhausted memory: 2");
  });
});

describe('the resync filter', () => {
  it("asks Nomad for the jobs with airfleet's prefix only, with the prefix taken literally", () => {
    expect(jobPrefixFilter('airfleet-')).toBe('JobID matches "^airfleet-"');
    // Validated to a-z, 0-9 and - (nomad-config.ts); anything else would still be matched as written.
    expect(jobPrefixFilter('a.b"c')).toBe(String.raw`JobID matches "^a\\.b\"c"`);
  });
});
