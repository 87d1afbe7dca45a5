import { BatchClient, DescribeJobsCommand, type JobDetail, ListJobsCommand } from '@aws-sdk/client-batch';
import { ListSecretsCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import pino from 'pino';
import type { BackendHost, BackendUpdate, InFlightAttempt } from '../../executor/src/backends/backend.ts';
import { BatchBackend } from '../../executor/src/backends/batch/batch-backend.ts';
import { batchConfigFromEnv } from '../../executor/src/backends/batch/batch-config.ts';
import type { Workload } from '../../executor/src/domain/workload.ts';
import { ADMIN_TOKEN, ServiceProcess, waitFor } from '../src/airfleet-process.ts';
import { motoAvailability, type StartedMoto, startMoto } from '../src/moto.ts';
import { createMotoBatch, MOTO_CREDENTIALS, MOTO_REGION, type MotoBatchEnvironment } from '../src/moto-batch.ts';
import { ThrottleProxy } from '../src/throttle-proxy.ts';

// The batch backend on a moto server that runs every Batch job as a container (the batch-task image) on
// the local Docker engine, behind a proxy that can throttle like AWS and hold answers back. The service
// runs as a real process with AIRFLEET_BACKENDS=pool,batch. What moto does not model (exit codes in
// DescribeJobs, status reasons of failures, log streams while a job runs) is covered by the unit tests on
// response fixtures (executor/test/unit/batch-*.test.ts); see docs/batch-on-moto.md.

const moto = motoAvailability();
if (!moto.ok) throw new Error(`the batch suite needs moto: ${moto.reason}`);

const terminal = (w: Workload) => ['succeeded', 'failed', 'cancelled'].includes(w.state);

describe('batch backend on moto (service as a process)', () => {
  let server: StartedMoto;
  let proxy: ThrottleProxy;
  let env: MotoBatchEnvironment;
  let service: ServiceProcess;
  let batch: BatchClient;
  let n = 0;

  beforeAll(async () => {
    server = await startMoto();
    proxy = await ThrottleProxy.start(server.endpoint);
    env = await createMotoBatch(server, { prefix: 'airfleet-it-' });
    batch = new BatchClient({ endpoint: server.endpoint, region: MOTO_REGION, credentials: MOTO_CREDENTIALS });
    service = await ServiceProcess.start({
      backends: 'pool,batch',
      env: {
        ...env.serviceEnv(proxy.endpoint),
        AIRFLEET_INSTANCE_NAME: 'batch-it',
        AIRFLEET_BATCH_MAX_TPS: '20',
        AIRFLEET_BATCH_POLL_INTERVAL_MS: '500',
        AIRFLEET_BATCH_LOG_INTERVAL_MS: '500',
        AIRFLEET_BATCH_RUNNABLE_TIMEOUT_SECONDS: '4',
        AIRFLEET_BATCH_RECONCILE_GRACE_SECONDS: '5',
      },
    });
  });
  afterAll(async () => {
    await service?.stop();
    await proxy?.stop();
    batch?.destroy();
    await server?.stop();
  });
  afterEach(() => {
    proxy.clear();
  });

  const submit = (body: Record<string, unknown>) =>
    service.client.request<Workload>('POST', '/v1/workloads', {
      body: { key: `batch-${++n}-${Math.random()}`, backend: 'batch', ...body },
    });
  const get = (id: string) => service.client.request<Workload>('GET', `/v1/workloads/${id}`);
  const waitEnded = (id: string, timeoutMs = 60_000) =>
    waitFor(
      `workload ${id} to end`,
      async () => ((w) => (terminal(w) ? w : null))(await get(id)),
      timeoutMs,
      () => service.process!.tail(),
    );
  const logs = async (id: string, stream: 'stdout' | 'stderr') => {
    const response = await fetch(`${service.url}/v1/workloads/${id}/logs?stream=${stream}`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const body = (await response.json()) as { data: string };
    return Buffer.from(body.data, 'base64').toString();
  };
  const jobsNamed = async (name: string) =>
    (await batch.send(new ListJobsCommand({ jobQueue: env.queueArn, filters: [{ name: 'JOB_NAME', values: [name] }] })))
      .jobSummaryList ?? [];
  const describe = async (jobId: string): Promise<JobDetail> =>
    (await batch.send(new DescribeJobsCommand({ jobs: [jobId] }))).jobs![0]!;

  it('runs a task to success and copies its output from CloudWatch Logs', async () => {
    const w = await submit({ command: ['sh', '-c', 'echo "hello from batch $AIRFLEET_ATTEMPT"; echo to-stderr >&2'] });
    const done = await waitEnded(w.id);
    expect(done).toMatchObject({ state: 'succeeded', exitCode: 0, attempt: 1 });
    const job = await describe(done.backendRef!);
    // Tags carry the workload and attempt, and the job may never be retried by Batch.
    expect(job.tags).toMatchObject({ 'airfleet:workload-id': w.id, 'airfleet:attempt': '1' });
    expect(job.jobName).toBe(`airfleet-it-${w.id}-1`);
    // awslogs gives stdout and stderr as one stream.
    const out = await logs(w.id, 'stdout');
    expect(out).toContain('hello from batch 1\n');
    expect(out).toContain('to-stderr\n');
  });

  it("gives a workload's secretEnv to its task, and no DescribeJobs answer shows it", async () => {
    const secret = `tok-${Math.random().toString(36).slice(2)}`;
    const w = await submit({
      command: ['sh', '-c', 'echo "token length ${#API_TOKEN}"'],
      secretEnv: { API_TOKEN: secret },
    });
    const answers: string[] = [];
    const done = await waitFor(
      'the task to end while its job is described',
      async () => {
        const current = await get(w.id);
        if (current.backendRef) answers.push(JSON.stringify(await describe(current.backendRef)));
        return terminal(current) ? current : null;
      },
      60_000,
    );
    expect(done).toMatchObject({ state: 'succeeded', exitCode: 0 });
    expect(await logs(w.id, 'stdout')).toBe(`token length ${secret.length}\n`);
    expect(answers.length).toBeGreaterThan(0);
    for (const answer of answers) expect(answer).not.toContain(secret);
    expect(answers.at(-1)).toContain('AIRFLEET_SECRET_ENV_ID');
  });

  it('fails a task that exits non-zero as task_error, without a second run', async () => {
    const w = await submit({ command: ['sh', '-c', 'echo failing; exit 7'] });
    const done = await waitEnded(w.id);
    // moto gives no exit code in DescribeJobs (docs/batch-on-moto.md): the failure is a task error all the same.
    expect(done).toMatchObject({ state: 'failed', reason: 'task_error', attempt: 1 });
    expect(await logs(w.id, 'stdout')).toContain('failing\n');
    expect(await jobsNamed(`airfleet-it-${w.id}-1`)).toHaveLength(1);
  });

  it('cancels a running task with TerminateJob and a reason', async () => {
    const w = await submit({ command: ['sh', '-c', 'echo started; sleep 120'] });
    const running = await waitFor(
      'the task to run',
      async () => ((x) => (x.state === 'running' ? x : null))(await get(w.id)),
      60_000,
    );
    await service.client.request('POST', `/v1/workloads/${w.id}/cancel`);
    const done = await waitEnded(w.id);
    expect(done.state).toBe('cancelled');
    const job = await describe(running.backendRef!);
    expect(job.status).toBe('FAILED');
    expect(job.statusReason).toBe('airfleet: cancelled by request');
    expect(await logs(w.id, 'stdout')).toContain('started\n');
  });

  it('slows submission under throttling (429 TooManyRequestsException) without failing a task', async () => {
    // Batch's quota, shrunk: SubmitJob at 2/s with bursts of 2, and the first 6 Batch calls throttled outright.
    proxy.limit('SubmitJob', 2, 2);
    proxy.throttleNext('*', 6);
    const before = proxy.count('SubmitJob');
    const started = Date.now();
    const ws = await Promise.all(Array.from({ length: 10 }, () => submit({ command: ['true'] })));
    const done = await Promise.all(ws.map((w) => waitEnded(w.id, 120_000)));
    expect(done.map((d) => d.state)).toEqual(ws.map(() => 'succeeded'));
    expect(done.every((d) => d.attempt === 1)).toBe(true);
    const after = proxy.count('SubmitJob');
    expect(after.throttled - before.throttled).toBeGreaterThan(0);
    expect(after.passed - before.passed).toBe(10);
    // 10 submissions through a 2/s quota with a burst of 2 take at least 4 s.
    expect(Date.now() - started).toBeGreaterThan(4_000);
  });

  it('does not submit twice when the service is SIGKILLed between SubmitJob and recording it', async () => {
    proxy.hold('SubmitJob');
    const w = await submit({ command: ['sh', '-c', 'echo once; sleep 2'] });
    const name = `airfleet-it-${w.id}-1`;
    // The job exists at moto, and its answer is held: the service has not recorded it.
    await waitFor('the job to exist at Batch', async () => (await jobsNamed(name)).length === 1, 30_000);
    expect((await get(w.id)).state).toBe('submitting');
    await service.restart('SIGKILL');
    proxy.release();
    const done = await waitEnded(w.id, 90_000);
    expect(done).toMatchObject({ state: 'succeeded', attempt: 1 });
    const jobs = await jobsNamed(name);
    expect(jobs).toHaveLength(1);
    expect(done.backendRef).toBe(jobs[0]!.jobId);
    expect(await jobsNamed(`airfleet-it-${w.id}-2`)).toHaveLength(0);
    expect(await logs(w.id, 'stdout')).toBe('once\n');
  });

  it('terminates a job held in RUNNABLE and fails it unschedulable after the timeout', async () => {
    // Each state lasts a second, then, once the job is RUNNABLE, moto's state manager holds it there.
    await server.setTransition('batch::job', { progression: 'time', seconds: 1 });
    try {
      const w = await submit({ command: ['true'], maxInfraRetries: 0 });
      const pending = await waitFor(
        'the job id',
        async () => ((x) => (x.backendRef ? x : null))(await get(w.id)),
        30_000,
      );
      await waitFor(
        'the job to be RUNNABLE',
        async () => (await describe(pending.backendRef!)).status === 'RUNNABLE',
        30_000,
      );
      await server.setTransition('batch::job', { progression: 'manual', times: 1_000_000_000 });
      const done = await waitEnded(w.id, 60_000);
      expect(done).toMatchObject({ state: 'failed', reason: 'unschedulable' });
      expect(done.message).toMatch(/RUNNABLE for \d+ s, longer than AIRFLEET_BATCH_RUNNABLE_TIMEOUT_SECONDS=4/);
      expect(done.message).toMatch(/queue airfleet-it-default: ENABLED\/VALID/);
      const job = await describe(done.backendRef!);
      expect(job.status).toBe('RUNNABLE'); // moto keeps a held job where it is, terminated or not
      expect(job.statusReason).toMatch(/^airfleet: unschedulable: RUNNABLE for/);
    } finally {
      await server.unsetTransition('batch::job');
    }
  });
});

/**
 * Secrets, at the backend itself (the service hands its backends their attempts' secret environment
 * through SubmitContext): the job gets them, DescribeJobs never shows them, the secret goes with the attempt.
 */
describe('batch backend secrets on moto', () => {
  let server: StartedMoto;
  let env: MotoBatchEnvironment;
  let backend: BatchBackend;
  let batch: BatchClient;
  let secrets: SecretsManagerClient;
  const updates: BackendUpdate[] = [];
  const stored = new Map<string, Buffer>();
  const inFlight: InFlightAttempt[] = [];

  const host: BackendHost = {
    logger: pino({ level: 'silent' }),
    instanceId: 'test-instance',
    update: async (u) => void updates.push(u),
    updateMany: async (us) => {
      updates.push(...us);
      for (const u of us) {
        if (u.state === 'running') continue;
        const i = inFlight.findIndex((a) => a.workloadId === u.workloadId && a.attempt === u.attempt);
        if (i >= 0) inFlight.splice(i, 1);
      }
    },
    appendLog: async (workloadId, attempt, stream, offset, data) => {
      const k = `${workloadId}/${attempt}/${stream}`;
      const current = stored.get(k) ?? Buffer.alloc(0);
      if (offset !== current.length) throw new Error(`append at ${offset}, stored ${current.length}`);
      stored.set(k, Buffer.concat([current, data]));
      return current.length + data.length;
    },
    logLength: async (workloadId, attempt, stream) => stored.get(`${workloadId}/${attempt}/${stream}`)?.length ?? 0,
    inFlight: async () => inFlight.map((a) => ({ ...a })),
    cursor: { get: async () => null, set: async () => undefined },
  };

  beforeAll(async () => {
    server = await startMoto();
    env = await createMotoBatch(server, { prefix: 'airfleet-sec-' });
    const config = { endpoint: server.endpoint, region: MOTO_REGION, credentials: MOTO_CREDENTIALS };
    batch = new BatchClient(config);
    secrets = new SecretsManagerClient(config);
    // The backend's clients take credentials from the standard chain, as in a deployment.
    process.env.AWS_ACCESS_KEY_ID = MOTO_CREDENTIALS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = MOTO_CREDENTIALS.secretAccessKey;
    backend = new BatchBackend(batchConfigFromEnv({ ...env.serviceEnv(), AIRFLEET_BATCH_POLL_INTERVAL_MS: '300' }));
    await backend.start(host);
  });
  afterAll(async () => {
    await backend?.close();
    batch?.destroy();
    secrets?.destroy();
    await server?.stop();
  });

  it('delivers the secret environment to the task, and no DescribeJobs answer shows it', async () => {
    const secret = `s3cr3t-${Math.random().toString(36).slice(2)}`;
    const workload = {
      id: '5b1f0c7e-2d7a-4b8e-9a51-3f3d2f0c9a11',
      queue: 'default',
      command: [
        'sh',
        '-c',
        'test "$API_TOKEN" = "$EXPECTED_DIGEST_INPUT" || echo mismatch; echo "token length ${#API_TOKEN}"',
      ],
      env: {},
      resources: {},
      execConfig: {},
    } as unknown as Workload;
    // The task compares the token with a value it can only have from the secret: EXPECTED_DIGEST_INPUT is
    // secret too, so neither appears in the job.
    const { ref } = await backend.submit(workload, 1, {
      secretEnv: { API_TOKEN: secret, EXPECTED_DIGEST_INPUT: secret },
      signal: new AbortController().signal,
    });
    inFlight.push({ workloadId: workload.id, attempt: 1, ref, state: 'pending', claimedAt: Date.now() });
    const answers: string[] = [];
    await waitFor(
      'the job to end',
      async () => {
        const answer = await batch.send(new DescribeJobsCommand({ jobs: [ref!] }));
        answers.push(JSON.stringify(answer.jobs));
        return updates.some((u) => u.workloadId === workload.id && u.state !== 'running');
      },
      60_000,
    );
    expect(updates.find((u) => u.state !== 'running')).toMatchObject({ state: 'succeeded', exitCode: 0 });
    expect(stored.get(`${workload.id}/1/stdout`)?.toString()).toBe(`token length ${secret.length}\n`);
    for (const answer of answers) expect(answer).not.toContain(secret);
    const job = JSON.parse(answers.at(-1)!)[0] as JobDetail;
    expect(job.container?.command?.slice(0, 2)).toEqual(['/opt/airfleet/bin/airfleet-batch-entry', '--']);
    expect(job.container?.environment?.find((e) => e.name === 'AIRFLEET_SECRET_ENV_ID')?.value).toMatch(
      /:secret:airfleet-sec-attempts\/5b1f0c7e-2d7a-4b8e-9a51-3f3d2f0c9a11\/1/,
    );
    // The attempt ended: its secret is gone.
    await waitFor(
      'the attempt secret to be deleted',
      async () => ((await secrets.send(new ListSecretsCommand({}))).SecretList ?? []).length === 0,
      10_000,
    );
  });
});
