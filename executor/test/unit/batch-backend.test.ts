import { BatchClient } from '@aws-sdk/client-batch';
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import pino from 'pino';
import type { BackendHost, BackendUpdate, InFlightAttempt } from '../../src/backends/backend.ts';
import { BatchBackend } from '../../src/backends/batch/batch-backend.ts';
import { batchConfigFromEnv } from '../../src/backends/batch/batch-config.ts';
import type { Workload } from '../../src/domain/workload.ts';
import { AwsFixtures, awsJob, QUEUE_ARN, ranAttempt, THROTTLED } from '../support/aws-fixtures.ts';
import { waitUntil } from '../support/service.ts';

// The batch backend driven through the real AWS SDK clients, whose HTTP handler answers from fixtures
// shaped like AWS's own answers: what moto does not model (throttling, exit codes and reasons in
// attempts, log streams while a job runs, disabled queues) and the call counts the design promises.

const credentials = { accessKeyId: 'AKIAFIXTURE', secretAccessKey: 'fixture' };
const ID = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

function setup(env: Record<string, string> = {}) {
  const aws = new AwsFixtures();
  aws.on('DescribeJobQueues', () => ({
    body: {
      jobQueues: [
        {
          jobQueueName: 'airfleet-test-default',
          jobQueueArn: QUEUE_ARN,
          state: 'ENABLED',
          status: 'VALID',
          statusReason: 'JobQueue Healthy',
          priority: 10,
          computeEnvironmentOrder: [],
        },
      ],
    },
  }));
  aws.on('DescribeJobDefinitions', () => ({
    body: {
      jobDefinitions: [
        {
          jobDefinitionName: 'airfleet-test-task-runner-ec2',
          revision: 3,
          status: 'ACTIVE',
          type: 'container',
          retryStrategy: { attempts: 1 },
        },
      ],
    },
  }));
  const options = { region: 'eu-west-1', credentials, requestHandler: aws.handler as never, maxAttempts: 1 };
  const config = batchConfigFromEnv({
    AWS_REGION: 'eu-west-1',
    AIRFLEET_ENVIRONMENT: 'test',
    AIRFLEET_BATCH_POLL_INTERVAL_MS: '300000', // the tests call poll() themselves
    AIRFLEET_BATCH_MAX_TPS: '50',
    AIRFLEET_BATCH_BURST: '100',
    ...env,
  });
  const backend = new BatchBackend(config, {
    batch: new BatchClient(options),
    logs: new CloudWatchLogsClient(options),
    secrets: new SecretsManagerClient(options),
  });
  const updates: BackendUpdate[] = [];
  const logs = new Map<string, string>();
  const inFlight: InFlightAttempt[] = [];
  const host: BackendHost = {
    logger: pino({ level: 'silent' }),
    instanceId: 'unit',
    update: async (u) => void updates.push(u),
    updateMany: async (us) => void updates.push(...us),
    appendLog: async (w, a, stream, offset, data) => {
      const k = `${w}/${a}/${stream}`;
      const current = logs.get(k) ?? '';
      if (offset !== current.length) throw new Error(`offset ${offset}, stored ${current.length}`);
      logs.set(k, current + data.toString());
      return current.length + data.length;
    },
    logLength: async (w, a, stream) => (logs.get(`${w}/${a}/${stream}`) ?? '').length,
    inFlight: async () => inFlight.map((a) => ({ ...a })),
    cursor: { get: async () => null, set: async () => undefined },
  };
  return { aws, backend, host, updates, logs, inFlight };
}

const workload = (i: number): Workload =>
  ({
    id: ID(i),
    queue: 'default',
    command: ['echo', String(i)],
    env: {},
    resources: {},
    execConfig: {},
  }) as unknown as Workload;
const context = () => ({ secretEnv: {}, signal: new AbortController().signal });

describe('batch backend (AWS SDK on fixtures)', () => {
  it('checks its queues and job definitions at start and names what is wrong', async () => {
    const { aws, backend, host } = setup({
      AIRFLEET_BATCH_QUEUES: JSON.stringify({
        gone: { jobQueue: 'airfleet-test-gone', jobDefinition: 'airfleet-test-old' },
      }),
    });
    aws.on('DescribeJobQueues', () => ({
      body: {
        jobQueues: [
          { jobQueueName: 'airfleet-test-default', jobQueueArn: QUEUE_ARN, state: 'DISABLED', status: 'VALID' },
        ],
      },
    }));
    aws.on('DescribeJobDefinitions', (body) =>
      body.jobDefinitionName === 'airfleet-test-old'
        ? {
            body: {
              jobDefinitions: [
                { jobDefinitionName: 'airfleet-test-old', revision: 1, status: 'INACTIVE', type: 'container' },
              ],
            },
          }
        : {
            body: {
              jobDefinitions: [
                {
                  jobDefinitionName: 'airfleet-test-task-runner-ec2',
                  revision: 3,
                  status: 'ACTIVE',
                  type: 'container',
                },
              ],
            },
          },
    );
    const error = await backend.start(host).catch((e: Error) => e);
    expect((error as Error).message).toMatch(/job queue 'airfleet-test-default' is DISABLED: enable it/);
    expect((error as Error).message).toMatch(/job queue 'airfleet-test-gone' does not exist in eu-west-1/);
    expect((error as Error).message).toMatch(/job definition 'airfleet-test-old' is INACTIVE/);
    await backend.close();
  });

  it('says when the credentials are refused', async () => {
    const { aws, backend, host } = setup();
    aws.on('DescribeJobQueues', () => ({
      status: 403,
      error: 'UnrecognizedClientException',
      message: 'The security token included in the request is invalid.',
    }));
    await expect(backend.start(host)).rejects.toThrow(
      /AWS credentials were refused or missing \(UnrecognizedClientException/,
    );
    await backend.close();
  });

  it('waits out TooManyRequestsException on SubmitJob and submits once', async () => {
    const { aws, backend, host } = setup();
    await backend.start(host);
    aws.next('SubmitJob', THROTTLED, THROTTLED, THROTTLED);
    aws.on('SubmitJob', (body) => ({ body: { jobName: body.jobName, jobId: 'job-1', jobArn: 'arn:job-1' } }));
    await expect(backend.submit(workload(1), 1, context())).resolves.toEqual({ ref: 'job-1' });
    expect(aws.calls('SubmitJob')).toHaveLength(4);
    expect(backend.usage().throttled.SubmitJob).toBe(3);
    // The shared bucket slowed down for every call of the instance.
    expect(backend.usage().rate).toBeLessThan(50);
    await backend.close();
  });

  it('looks for the job before repeating a SubmitJob whose answer was lost (5xx)', async () => {
    const { aws, backend, host } = setup();
    await backend.start(host);
    aws.next('SubmitJob', { status: 500, error: 'ServerException', message: 'internal error' });
    const name = `airfleet-test-${ID(2)}-1`;
    aws.on('ListJobs', () => ({
      body: { jobSummaryList: [{ jobId: 'made-anyway', jobName: name, createdAt: Date.now(), status: 'SUBMITTED' }] },
    }));
    aws.on('DescribeJobs', () => ({
      body: {
        jobs: [
          awsJob({
            jobId: 'made-anyway',
            jobName: name,
            tags: { 'airfleet:workload-id': ID(2), 'airfleet:attempt': '1' },
          }),
        ],
      },
    }));
    await expect(backend.submit(workload(2), 1, context())).resolves.toEqual({ ref: 'made-anyway' });
    expect(aws.calls('SubmitJob')).toHaveLength(1);
    expect(aws.calls('ListJobs')[0]).toMatchObject({ filters: [{ name: 'JOB_NAME', values: [name] }] });
    await backend.close();
  });

  it('describes 250 live jobs with 3 DescribeJobs calls per pass and maps them to the shared states', async () => {
    const { aws, backend, host, updates, inFlight } = setup();
    await backend.start(host);
    for (let i = 0; i < 250; i++) {
      inFlight.push({ workloadId: ID(i), attempt: 1, ref: `job-${i}`, state: 'pending', claimedAt: Date.now() });
    }
    aws.on('DescribeJobs', (body) => ({
      body: {
        jobs: (body.jobs as string[]).map((jobId) => {
          const i = Number(jobId.slice(4));
          if (i === 0) return awsJob({ jobId, status: 'RUNNING', startedAt: Date.now() });
          if (i === 1)
            return awsJob({ jobId, status: 'SUCCEEDED', startedAt: 1, attempts: [ranAttempt(jobId, { exitCode: 0 })] });
          if (i === 2)
            return awsJob({ jobId, status: 'FAILED', startedAt: 1, attempts: [ranAttempt(jobId, { exitCode: 3 })] });
          return awsJob({ jobId, status: 'RUNNABLE', createdAt: Date.now() });
        }),
      },
    }));
    aws.on('GetLogEvents', () => ({ body: { events: [], nextForwardToken: 'f/1', nextBackwardToken: 'b/1' } }));
    await backend.poll();
    const sizes = aws.calls('DescribeJobs').map((b) => (b.jobs as string[]).length);
    expect(sizes).toEqual([100, 100, 50]);
    expect(updates).toEqual(
      expect.arrayContaining([
        { workloadId: ID(0), attempt: 1, state: 'running' },
        { workloadId: ID(1), attempt: 1, state: 'succeeded', exitCode: 0 },
        expect.objectContaining({
          workloadId: ID(2),
          state: 'failed',
          reason: 'task_error',
          exitCode: 3,
          started: true,
        }),
      ]),
    );
    expect(updates).toHaveLength(3);
    await backend.close();
  });

  it("terminates a job RUNNABLE past its timeout and fails it unschedulable with the queue's status reason", async () => {
    const { aws, backend, host, updates, inFlight } = setup({ AIRFLEET_BATCH_RUNNABLE_TIMEOUT_SECONDS: '600' });
    await backend.start(host);
    inFlight.push({ workloadId: ID(7), attempt: 1, ref: 'stuck', state: 'pending', claimedAt: Date.now() - 700_000 });
    aws.on('DescribeJobs', () => ({
      body: {
        jobs: [
          awsJob({
            jobId: 'stuck',
            status: 'RUNNABLE',
            createdAt: Date.now() - 700_000,
            statusReason:
              'MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job queue cannot meet the CPU requirement of the job.',
          }),
        ],
      },
    }));
    aws.on('TerminateJob', () => ({ body: {} }));
    await backend.poll();
    expect(aws.calls('TerminateJob')).toEqual([
      { jobId: 'stuck', reason: expect.stringMatching(/^airfleet: unschedulable: RUNNABLE for 700 s/) },
    ]);
    expect(updates).toEqual([
      expect.objectContaining({ workloadId: ID(7), state: 'failed', reason: 'unschedulable', started: false }),
    ]);
    const message = (updates[0] as { message: string }).message;
    expect(message).toMatch(/job: MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE/);
    expect(message).toMatch(/queue airfleet-test-default: ENABLED\/VALID - JobQueue Healthy/);
    await backend.close();
  });

  it('copies a running job log page by page with nextForwardToken, then the rest at the end', async () => {
    const { aws, backend, host, updates, logs, inFlight } = setup({ AIRFLEET_BATCH_LOG_INTERVAL_MS: '100' });
    await backend.start(host);
    inFlight.push({ workloadId: ID(3), attempt: 1, ref: 'logs', state: 'running', claimedAt: Date.now() });
    let status: 'RUNNING' | 'SUCCEEDED' = 'RUNNING';
    aws.on('DescribeJobs', () => ({
      body: {
        jobs: [
          awsJob({
            jobId: 'logs',
            status,
            startedAt: 1,
            container: {
              ...awsJob({ jobId: 'x' }).container,
              logStreamName: 'task-runner/default/abc',
              ...(status === 'SUCCEEDED' ? { exitCode: 0 } : {}),
            },
          }),
        ],
      },
    }));
    const pages: Record<string, { events: Array<{ timestamp: number; message: string }>; nextForwardToken: string }> = {
      start: {
        events: [
          { timestamp: 1, message: 'one' },
          { timestamp: 2, message: 'two' },
        ],
        nextForwardToken: 'f/2',
      },
      'f/2': { events: [{ timestamp: 3, message: 'three' }], nextForwardToken: 'f/3' },
      'f/3': { events: [], nextForwardToken: 'f/3' },
    };
    aws.on('GetLogEvents', (body) => ({ body: pages[(body.nextToken as string) ?? 'start'] }));
    await backend.poll();
    await waitUntil(async () => logs.get(`${ID(3)}/1/stdout`) === 'one\ntwo\nthree\n', 5_000);
    expect(aws.calls('GetLogEvents')[0]).toMatchObject({
      logGroupName: '/airfleet/test/batch',
      logStreamName: 'task-runner/default/abc',
      startFromHead: true,
    });
    pages['f/3'] = { events: [{ timestamp: 4, message: 'four' }], nextForwardToken: 'f/4' };
    pages['f/4'] = { events: [], nextForwardToken: 'f/4' };
    status = 'SUCCEEDED';
    await backend.poll();
    expect(logs.get(`${ID(3)}/1/stdout`)).toBe('one\ntwo\nthree\nfour\n');
    expect(updates.at(-1)).toEqual({ workloadId: ID(3), attempt: 1, state: 'succeeded', exitCode: 0 });
    await backend.close();
  });

  it('notes a missing log stream in the log instead of failing', async () => {
    const { aws, backend, host, updates, logs, inFlight } = setup();
    await backend.start(host);
    inFlight.push({ workloadId: ID(4), attempt: 1, ref: 'nolog', state: 'running', claimedAt: Date.now() });
    aws.on('DescribeJobs', () => ({
      body: {
        jobs: [
          awsJob({
            jobId: 'nolog',
            status: 'FAILED',
            startedAt: 1,
            attempts: [ranAttempt('nolog', { exitCode: 1 })],
            container: { ...awsJob({ jobId: 'x' }).container, logStreamName: 'task-runner/default/gone', exitCode: 1 },
          }),
        ],
      },
    }));
    aws.on('GetLogEvents', () => ({
      status: 400,
      error: 'ResourceNotFoundException',
      message: 'The specified log stream does not exist.',
    }));
    await backend.poll();
    expect(updates).toEqual([expect.objectContaining({ state: 'failed', reason: 'task_error', exitCode: 1 })]);
    expect(logs.get(`${ID(4)}/1/stderr`)).toMatch(
      /CloudWatch log stream \/airfleet\/test\/batch\/task-runner\/default\/gone .* does not exist/,
    );
    await backend.close();
  });

  it('cancels with CancelJob before the start and TerminateJob after', async () => {
    const { aws, backend, host, inFlight } = setup();
    await backend.start(host);
    aws.on('CancelJob', () => ({ body: {} }));
    aws.on('TerminateJob', () => ({ body: {} }));
    inFlight.push({ workloadId: ID(5), attempt: 1, ref: 'c', state: 'pending', claimedAt: Date.now() });
    let status: 'RUNNABLE' | 'RUNNING' = 'RUNNABLE';
    aws.on('DescribeJobs', () => ({ body: { jobs: [awsJob({ jobId: 'c', status, createdAt: Date.now() })] } }));
    aws.on('GetLogEvents', () => ({ body: { events: [], nextForwardToken: 'f/0' } }));
    await backend.poll();
    await backend.cancel({ workloadId: ID(5), attempt: 1, ref: 'c' });
    expect(aws.calls('CancelJob')).toEqual([{ jobId: 'c', reason: 'airfleet: cancelled by request' }]);
    // The job started before the cancel reached it: CancelJob does nothing then, so the loop terminates it.
    status = 'RUNNING';
    await backend.poll();
    expect(aws.calls('TerminateJob')).toEqual([{ jobId: 'c', reason: 'airfleet: cancelled by request' }]);
    await backend.close();
  });

  it('reconciles by name and tags: attached when listed, pending within the grace period, absent after it', async () => {
    const { aws, backend, host } = setup({ AIRFLEET_BATCH_RECONCILE_GRACE_SECONDS: '60' });
    await backend.start(host);
    const found = `airfleet-test-${ID(8)}-1`;
    aws.on('ListJobs', (body) => {
      const [name] = (body.filters as Array<{ values: string[] }>)[0]!.values;
      return {
        body: {
          jobSummaryList:
            name === found ? [{ jobId: 'j8', jobName: found, createdAt: Date.now(), status: 'RUNNING' }] : [],
        },
      };
    });
    aws.on('DescribeJobs', (body) => ({
      body: {
        jobs: (body.jobs as string[]).includes('j8')
          ? [
              awsJob({
                jobId: 'j8',
                jobName: found,
                status: 'RUNNING',
                tags: { 'airfleet:workload-id': ID(8), 'airfleet:attempt': '1' },
              }),
            ]
          : [],
      },
    }));
    aws.on('DeleteSecret', () => ({
      status: 400,
      error: 'ResourceNotFoundException',
      message: "Secrets Manager can't find the specified secret.",
    }));
    const verdicts = await backend.reconcile([
      { workloadId: ID(8), attempt: 1, ref: null, state: 'submitting', claimedAt: Date.now() - 120_000 },
      { workloadId: ID(9), attempt: 1, ref: null, state: 'submitting', claimedAt: Date.now() - 5_000 },
      { workloadId: ID(10), attempt: 1, ref: null, state: 'submitting', claimedAt: Date.now() - 120_000 },
      { workloadId: ID(11), attempt: 1, ref: 'vanished', state: 'running', claimedAt: Date.now() - 120_000 },
    ]);
    expect(verdicts).toEqual([
      { workloadId: ID(8), attempt: 1, verdict: 'attached', ref: 'j8' },
      expect.objectContaining({ workloadId: ID(9), verdict: 'pending' }),
      { workloadId: ID(10), attempt: 1, verdict: 'absent' },
      expect.objectContaining({ workloadId: ID(11), verdict: 'lost', started: true }),
    ]);
    await backend.close();
  });
});
