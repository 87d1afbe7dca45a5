import type { JobDetail } from '@aws-sdk/client-batch';

/**
 * An HTTP handler for AWS SDK v3 clients that answers from fixtures instead of the network, so unit tests
 * drive the real SDK (serialisation, error parsing, throttling detection) with responses shaped like those
 * of AWS itself, for what moto does not model (docs/batch-on-moto.md). Operations are named as AWS names
 * them: Batch's REST path (`/v1/describejobs` → `DescribeJobs`) or the JSON protocols' `x-amz-target`.
 */
export type FixtureAnswer =
  | { status?: 200; body: unknown }
  | { status: number; error: string; message: string; headers?: Record<string, string> };

export type FixtureRoute = (body: Record<string, unknown>) => FixtureAnswer;

export class AwsFixtures {
  readonly requests: Array<{ operation: string; body: Record<string, unknown> }> = [];
  private readonly routes = new Map<string, FixtureRoute>();
  private readonly once = new Map<string, FixtureAnswer[]>();

  /** Answers every call of `operation` with `route(body)`. */
  on(operation: string, route: FixtureRoute): this {
    this.routes.set(operation, route);
    return this;
  }

  /** The next calls of `operation` get these answers, in order, before its route. */
  next(operation: string, ...answers: FixtureAnswer[]): this {
    this.once.set(operation, [...(this.once.get(operation) ?? []), ...answers]);
    return this;
  }

  calls(operation: string): Array<Record<string, unknown>> {
    return this.requests.filter((r) => r.operation === operation).map((r) => r.body);
  }

  /** The `requestHandler` to give a client. */
  readonly handler = {
    handle: async (request: { path: string; headers: Record<string, string>; body?: unknown }) => {
      const target = request.headers['x-amz-target'];
      const operation = target
        ? target.split('.').pop()!
        : (BATCH_PATHS[request.path.split('/').pop()!] ?? request.path);
      const text =
        typeof request.body === 'string'
          ? request.body
          : request.body
            ? Buffer.from(request.body as Uint8Array).toString()
            : '';
      const body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
      this.requests.push({ operation, body });
      const queued = this.once.get(operation);
      const answer = queued?.length ? queued.shift()! : this.routes.get(operation)?.(body);
      if (!answer) throw new Error(`no fixture for ${operation}`);
      if ('error' in answer) {
        return {
          response: {
            statusCode: answer.status,
            headers: {
              'content-type': 'application/json',
              'x-amzn-errortype': `${answer.error}:`,
              'x-amzn-requestid': 'fixture',
              ...answer.headers,
            },
            body: Buffer.from(JSON.stringify({ __type: answer.error, message: answer.message })),
          },
        };
      }
      return {
        response: {
          statusCode: 200,
          headers: { 'content-type': 'application/json', 'x-amzn-requestid': 'fixture' },
          body: Buffer.from(JSON.stringify(answer.body)),
        },
      };
    },
  };
}

const BATCH_PATHS: Record<string, string> = {
  submitjob: 'SubmitJob',
  describejobs: 'DescribeJobs',
  listjobs: 'ListJobs',
  terminatejob: 'TerminateJob',
  canceljob: 'CancelJob',
  describejobqueues: 'DescribeJobQueues',
  describejobdefinitions: 'DescribeJobDefinitions',
};

export const THROTTLED: FixtureAnswer = {
  status: 429,
  error: 'TooManyRequestsException',
  message: 'Too Many Requests.',
};

const ACCOUNT = '123456789012';
const REGION = 'eu-west-1';
export const QUEUE_ARN = `arn:aws:batch:${REGION}:${ACCOUNT}:job-queue/airfleet-test-default`;
export const DEFINITION_ARN = `arn:aws:batch:${REGION}:${ACCOUNT}:job-definition/airfleet-test-task-runner-ec2:3`;

/**
 * A DescribeJobs entry as AWS Batch returns it for an EC2 job (the fields of the API reference's example,
 * trimmed to what the backend reads), with `overrides` laid over it.
 */
export function awsJob(overrides: Partial<JobDetail> & { jobId: string }): JobDetail {
  const created = 1_700_000_000_000;
  return {
    jobArn: `arn:aws:batch:${REGION}:${ACCOUNT}:job/${overrides.jobId}`,
    jobName: `airfleet-test-${overrides.jobId}`,
    jobQueue: QUEUE_ARN,
    status: 'RUNNABLE',
    attempts: [],
    createdAt: created,
    dependsOn: [],
    jobDefinition: DEFINITION_ARN,
    parameters: {},
    container: {
      image: '123456789012.dkr.ecr.eu-west-1.amazonaws.com/airfleet-test-task-runner:1.0',
      command: ['true'],
      jobRoleArn: `arn:aws:iam::${ACCOUNT}:role/airfleet-test-batch-job`,
      executionRoleArn: `arn:aws:iam::${ACCOUNT}:role/airfleet-test-batch-execution`,
      volumes: [],
      environment: [],
      mountPoints: [],
      ulimits: [],
      resourceRequirements: [
        { type: 'VCPU', value: '2' },
        { type: 'MEMORY', value: '4096' },
      ],
      logConfiguration: {
        logDriver: 'awslogs',
        options: {
          'awslogs-group': '/airfleet/test/batch',
          'awslogs-region': REGION,
          'awslogs-stream-prefix': 'task-runner',
        },
      },
      secrets: [],
      networkInterfaces: [],
    },
    tags: {},
    propagateTags: true,
    platformCapabilities: ['EC2'],
    ...overrides,
  } as JobDetail;
}

/** An attempt of a job whose container ran (startedAt set), as in DescribeJobs' `attempts`. */
export function ranAttempt(
  jobId: string,
  container: { exitCode?: number; reason?: string },
  statusReason = 'Essential container in task exited',
) {
  return {
    container: {
      containerInstanceArn: `arn:aws:ecs:${REGION}:${ACCOUNT}:container-instance/airfleet/0123456789abcdef`,
      taskArn: `arn:aws:ecs:${REGION}:${ACCOUNT}:task/airfleet/${jobId.slice(0, 8)}`,
      logStreamName: `task-runner/default/${jobId.slice(0, 8)}`,
      networkInterfaces: [],
      ...container,
    },
    startedAt: 1_700_000_060_000,
    stoppedAt: 1_700_000_120_000,
    statusReason,
  };
}
