import { batchConfigFromEnv } from '../../src/backends/batch/batch-config.ts';
import { deepMerge, submitJobInput } from '../../src/backends/batch/job-spec.ts';
import { observe } from '../../src/backends/batch/job-status.ts';
import { RateLimiter } from '../../src/backends/batch/rate-limiter.ts';
import type { Workload } from '../../src/domain/workload.ts';
import { ConfigError } from '../../src/errors.ts';
import { awsJob, ranAttempt } from '../support/aws-fixtures.ts';

const ENV = { AWS_REGION: 'eu-west-1', AIRFLEET_ENVIRONMENT: 'test' };

describe('batch status mapping (DescribeJobs entries shaped like AWS answers)', () => {
  it('maps the waiting states to pending and RUNNING to running', () => {
    for (const status of ['SUBMITTED', 'PENDING', 'RUNNABLE', 'STARTING'] as const) {
      expect(observe(awsJob({ jobId: 'j', status }))).toMatchObject({ kind: 'waiting', status });
    }
    expect(observe(awsJob({ jobId: 'j', status: 'RUNNING', startedAt: 1 }))).toEqual({ kind: 'running' });
  });

  it('takes the exit code from the container, or from the last attempt', () => {
    const ok = awsJob({ jobId: 'a', status: 'SUCCEEDED', startedAt: 1, attempts: [ranAttempt('a', { exitCode: 0 })] });
    expect(observe(ok)).toEqual({ kind: 'succeeded', exitCode: 0 });
    const failed = awsJob({
      jobId: 'b',
      status: 'FAILED',
      startedAt: 1,
      statusReason: 'Essential container in task exited',
      attempts: [ranAttempt('b', { exitCode: 7 })],
    });
    expect(observe(failed)).toMatchObject({ kind: 'failed', reason: 'task_error', started: true, exitCode: 7 });
    const killed = awsJob({ jobId: 'c', status: 'FAILED', startedAt: 1, container: { exitCode: 137 } });
    expect(observe(killed)).toMatchObject({
      reason: 'task_error',
      exitCode: 137,
      message: expect.stringMatching(/signal 9/),
    });
  });

  it('fails a job whose host went away while it ran as lost, started (never retried)', () => {
    const job = awsJob({
      jobId: 'h',
      status: 'FAILED',
      startedAt: 1_700_000_060_000,
      statusReason: 'Host EC2 (instance i-0a1b2c3d4e5f67890) terminated.',
      attempts: [ranAttempt('h', {}, 'Host EC2 (instance i-0a1b2c3d4e5f67890) terminated.')],
    });
    expect(observe(job)).toMatchObject({ kind: 'failed', reason: 'lost', started: true });
  });

  it('fails a job whose host went away before it started as lost, not started (an infra retry)', () => {
    const job = awsJob({
      jobId: 'h2',
      status: 'FAILED',
      statusReason: 'Task failed to start',
      attempts: [
        {
          container: { reason: 'CannotInspectContainerError: Could not transition to inspecting' },
          statusReason: 'Task failed to start',
        },
      ],
    });
    expect(observe(job)).toMatchObject({ kind: 'failed', reason: 'lost', started: false });
  });

  it('recognises image pulls, out-of-memory kills, placement failures and timeouts', () => {
    const pull = awsJob({
      jobId: 'p',
      status: 'FAILED',
      statusReason: 'Task failed to start',
      attempts: [
        {
          container: {
            reason:
              'CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref 123456789012.dkr.ecr.eu-west-1.amazonaws.com/airfleet-test-task-runner:nope: not found',
          },
          statusReason: 'Task failed to start',
        },
      ],
    });
    expect(observe(pull)).toMatchObject({ reason: 'image_pull', started: false });
    const oom = awsJob({
      jobId: 'o',
      status: 'FAILED',
      startedAt: 1,
      attempts: [ranAttempt('o', { exitCode: 137, reason: 'OutOfMemoryError: Container killed due to memory usage' })],
    });
    expect(observe(oom)).toMatchObject({ reason: 'oom', started: true, exitCode: 137 });
    const placement = awsJob({
      jobId: 'u',
      status: 'FAILED',
      statusReason:
        'MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher than that can be met by any of the compute environments associated with the queue.',
    });
    expect(observe(placement)).toMatchObject({ reason: 'unschedulable', started: false });
    const timeout = awsJob({
      jobId: 't',
      status: 'FAILED',
      startedAt: 1,
      statusReason: 'Job attempt duration exceeded timeout',
      attempts: [ranAttempt('t', {}, 'Job attempt duration exceeded timeout')],
    });
    expect(observe(timeout)).toMatchObject({ reason: 'task_error', started: true, message: /timed out/ });
  });

  it('knows the stops it asked for by their reason, after a restart too', () => {
    const cancelled = awsJob({ jobId: 'x', status: 'FAILED', statusReason: 'airfleet: cancelled by request' });
    expect(observe(cancelled)).toMatchObject({ kind: 'cancelled' });
    const stuck = awsJob({
      jobId: 'y',
      status: 'FAILED',
      statusReason: 'airfleet: unschedulable: RUNNABLE for 1900 s',
    });
    expect(observe(stuck)).toMatchObject({ kind: 'failed', reason: 'unschedulable', started: false });
  });
});

const workload = (over: Partial<Workload> = {}): Workload =>
  ({
    id: '0f8e1c1a-3b5d-4c2e-9f70-6a1b2c3d4e5f',
    queue: 'default',
    command: ['python', '-m', 'task'],
    env: { AIRFLOW__CORE__DAGS_FOLDER: '/dags' },
    resources: { cpu: 2, memoryMb: 4096, gpus: 1 },
    execConfig: {},
    ...over,
  }) as Workload;

describe('batch job spec', () => {
  const config = batchConfigFromEnv({
    ...ENV,
    AIRFLEET_BATCH_SUBMIT_JOB_KWARGS: JSON.stringify({
      shareIdentifier: 'etl',
      containerOverrides: { environment: [{ name: 'FROM_KWARGS', value: '1' }], instanceType: 'm7i.large' },
      tags: { team: 'data' },
      retryStrategy: { attempts: 5 },
    }),
  });

  it('deep-merges like Python dict updates: nested objects merged, other values replaced', () => {
    expect(deepMerge({ a: { b: 1, c: 2 }, l: [1, 2] }, { a: { c: 3 }, l: [3] })).toEqual({ a: { b: 1, c: 3 }, l: [3] });
  });

  it('builds SubmitJob: command, environment, resources, tags, kwargs with execConfig over them, attempts 1', () => {
    const input = submitJobInput(
      workload({
        execConfig: {
          batch: { containerOverrides: { instanceType: 'g5.xlarge' }, timeout: { attemptDurationSeconds: 60 } },
        },
      }),
      2,
      config,
      null,
    );
    expect(input).toMatchObject({
      jobName: 'airfleet-test-0f8e1c1a-3b5d-4c2e-9f70-6a1b2c3d4e5f-2',
      jobQueue: 'airfleet-test-default',
      jobDefinition: 'airfleet-test-task-runner-ec2',
      shareIdentifier: 'etl',
      timeout: { attemptDurationSeconds: 60 },
      retryStrategy: { attempts: 1 },
      tags: {
        team: 'data',
        'airfleet:workload-id': '0f8e1c1a-3b5d-4c2e-9f70-6a1b2c3d4e5f',
        'airfleet:attempt': '2',
        // The executor's role may stop only jobs with its environment's prefix (stacks/src/lib/executor-permissions.ts).
        'airfleet:resource-prefix': 'airfleet-test-',
      },
      propagateTags: true,
    });
    expect(input.containerOverrides).toEqual({
      instanceType: 'g5.xlarge',
      command: ['python', '-m', 'task'],
      environment: [
        { name: 'FROM_KWARGS', value: '1' },
        { name: 'AIRFLOW__CORE__DAGS_FOLDER', value: '/dags' },
        { name: 'AIRFLEET_WORKLOAD_ID', value: '0f8e1c1a-3b5d-4c2e-9f70-6a1b2c3d4e5f' },
        { name: 'AIRFLEET_ATTEMPT', value: '2' },
      ],
      resourceRequirements: [
        { type: 'VCPU', value: '2' },
        { type: 'MEMORY', value: '4096' },
        { type: 'GPU', value: '1' },
      ],
    });
  });

  it('runs the command through airfleet-batch-entry and names only the secret when there are secrets', () => {
    const input = submitJobInput(
      workload(),
      1,
      config,
      'arn:aws:secretsmanager:eu-west-1:1:secret:airfleet-test-attempts/x/1-AbC',
    );
    expect(input.containerOverrides?.command).toEqual([
      '/opt/airfleet/bin/airfleet-batch-entry',
      '--',
      'python',
      '-m',
      'task',
    ]);
    expect(input.containerOverrides?.environment).toContainEqual({
      name: 'AIRFLEET_SECRET_ENV_ID',
      value: 'arn:aws:secretsmanager:eu-west-1:1:secret:airfleet-test-attempts/x/1-AbC',
    });
  });

  it('sends a workload queue to the Batch queue mapped for it, and execConfig can name another', () => {
    const mapped = batchConfigFromEnv({
      ...ENV,
      AIRFLEET_BATCH_QUEUES: JSON.stringify({
        light: { jobQueue: 'airfleet-test-light', jobDefinition: 'airfleet-test-task-runner-fargate' },
      }),
    });
    expect(submitJobInput(workload({ queue: 'light' }), 1, mapped, null)).toMatchObject({
      jobQueue: 'airfleet-test-light',
      jobDefinition: 'airfleet-test-task-runner-fargate',
    });
    expect(submitJobInput(workload({ execConfig: { batch: { jobQueue: 'other' } } }), 1, mapped, null).jobQueue).toBe(
      'other',
    );
  });
});

describe('batch configuration', () => {
  it('derives names from the environment the stacks set', () => {
    const config = batchConfigFromEnv({ AWS_REGION: 'eu-west-1', AIRFLEET_BATCH_RESOURCE_PREFIX: 'airfleet-prod-' });
    expect(config).toMatchObject({
      region: 'eu-west-1',
      resourcePrefix: 'airfleet-prod-',
      jobQueue: 'airfleet-prod-default',
      jobDefinition: 'airfleet-prod-task-runner-ec2',
      jobNamePrefix: 'airfleet-prod',
      maxTps: 10,
      maxSubmitAttempts: 3,
      checkHealthOnStartup: true,
    });
  });

  it('lists every problem at once, by variable name', () => {
    let error: unknown;
    try {
      batchConfigFromEnv({
        AIRFLEET_BATCH_SUBMIT_JOB_KWARGS: '{nope',
        AIRFLEET_BATCH_MAX_TPS: '80',
        AIRFLEET_BATCH_CHECK_HEALTH_ON_STARTUP: 'maybe',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/AIRFLEET_BATCH_RESOURCE_PREFIX \(or AIRFLEET_ENVIRONMENT\) is not set/);
    expect(message).toMatch(/AWS_REGION is not set/);
    expect(message).toMatch(/AIRFLEET_BATCH_SUBMIT_JOB_KWARGS: not valid JSON/);
    expect(message).toMatch(/AIRFLEET_BATCH_MAX_TPS: .*50/);
    expect(message).toMatch(/AIRFLEET_BATCH_CHECK_HEALTH_ON_STARTUP=maybe must be true or false/);
  });
});

describe('adaptive rate limiter', () => {
  it('lets calls through at its rate after the burst', async () => {
    const limiter = new RateLimiter(20, 5);
    const started = Date.now();
    await Promise.all(Array.from({ length: 15 }, () => limiter.acquire()));
    // 5 at once, then 10 at 20/s: about half a second.
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
    limiter.close();
  });

  it('halves its rate on throttling and recovers without it', async () => {
    const limiter = new RateLimiter(40, 1);
    limiter.onThrottle();
    expect(limiter.currentRate).toBeCloseTo(20, 0);
    await new Promise((resolve) => setTimeout(resolve, 1_600));
    expect(limiter.currentRate).toBeGreaterThan(20);
    limiter.close();
  });
});
