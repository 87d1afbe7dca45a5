import {
  BatchClient,
  CreateComputeEnvironmentCommand,
  CreateJobQueueCommand,
  DescribeComputeEnvironmentsCommand,
  RegisterJobDefinitionCommand,
} from '@aws-sdk/client-batch';
import { CreateRoleCommand, IAMClient } from '@aws-sdk/client-iam';
import { projectImage } from './docker-env.ts';
import type { StartedMoto } from './moto.ts';

/** Credentials moto accepts (any); tests hand them to the service and to the job containers. */
export const MOTO_CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' } as const;
export const MOTO_REGION = 'eu-west-1';

export interface MotoBatchEnvironment {
  /** The resource prefix, as the stacks give it (`AIRFLEET_BATCH_RESOURCE_PREFIX`). */
  prefix: string;
  queueName: string;
  queueArn: string;
  jobDefinitionName: string;
  jobDefinitionArn: string;
  /** The environment the executor service needs to run the `batch` backend against this moto. */
  serviceEnv(endpoint?: string): Record<string, string>;
}

/**
 * What the batch stack makes, made on moto: an UNMANAGED compute environment (moto runs every job as a
 * container on the local Docker engine whatever the type; unmanaged asks it for no EC2 instances), one
 * job queue and the task-runner job definition with `attempts: 1`, as the stack defines it. The job
 * definition's image is the locally built batch-task image, and its environment points the job's AWS
 * calls (Secrets Manager, for its secret environment) back at moto.
 */
export async function createMotoBatch(
  moto: StartedMoto,
  options: { prefix: string; image?: string },
): Promise<MotoBatchEnvironment> {
  const config = { endpoint: moto.endpoint, region: MOTO_REGION, credentials: MOTO_CREDENTIALS };
  const iam = new IAMClient({ ...config, region: 'us-east-1' });
  const batch = new BatchClient(config);
  const { prefix } = options;
  try {
    const role = await iam.send(
      new CreateRoleCommand({ RoleName: `${prefix}batch-service`, AssumeRolePolicyDocument: '{}' }),
    );
    const ce = await batch.send(
      new CreateComputeEnvironmentCommand({
        computeEnvironmentName: `${prefix}unmanaged`,
        type: 'UNMANAGED',
        state: 'ENABLED',
        serviceRole: role.Role!.Arn!,
      }),
    );
    const queueName = `${prefix}default`;
    const queue = await batch.send(
      new CreateJobQueueCommand({
        jobQueueName: queueName,
        priority: 1,
        state: 'ENABLED',
        computeEnvironmentOrder: [{ order: 1, computeEnvironment: ce.computeEnvironmentArn! }],
      }),
    );
    const jobDefinitionName = `${prefix}task-runner-ec2`;
    const definition = await batch.send(
      new RegisterJobDefinitionCommand({
        jobDefinitionName,
        type: 'container',
        platformCapabilities: ['EC2'],
        propagateTags: true,
        retryStrategy: { attempts: 1 },
        containerProperties: {
          image: options.image ?? projectImage('batch-task'),
          resourceRequirements: [
            { type: 'VCPU', value: '1' },
            { type: 'MEMORY', value: '256' },
          ],
          environment: [
            { name: 'AWS_REGION', value: MOTO_REGION },
            { name: 'AWS_ENDPOINT_URL', value: moto.endpoint },
            { name: 'AWS_ACCESS_KEY_ID', value: MOTO_CREDENTIALS.accessKeyId },
            { name: 'AWS_SECRET_ACCESS_KEY', value: MOTO_CREDENTIALS.secretAccessKey },
          ],
        },
      }),
    );
    return {
      prefix,
      queueName,
      queueArn: queue.jobQueueArn!,
      jobDefinitionName,
      jobDefinitionArn: definition.jobDefinitionArn!,
      serviceEnv: (endpoint = moto.endpoint) => ({
        AWS_REGION: MOTO_REGION,
        AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
        AWS_ENDPOINT_URL: endpoint,
        AIRFLEET_BATCH_RESOURCE_PREFIX: prefix,
        AIRFLEET_BATCH_JOB_QUEUE: queueName,
        AIRFLEET_BATCH_JOB_DEFINITION: jobDefinitionName,
      }),
    };
  } finally {
    iam.destroy();
    batch.destroy();
  }
}

/**
 * The rest of what the batch stack creates for a deployed executor: every job queue and job definition its
 * `AIRFLEET_BATCH_QUEUES` names (JSON, stacks/src/lib/batch-targets.ts) that `createMotoBatch` did not make,
 * on the same compute environment, so the service finds each one it was told of when it starts.
 */
export async function createMotoBatchTargets(
  moto: StartedMoto,
  made: MotoBatchEnvironment,
  queuesJson: string,
): Promise<void> {
  const targets = Object.values(JSON.parse(queuesJson) as Record<string, { jobQueue: string; jobDefinition: string }>);
  const batch = new BatchClient({ endpoint: moto.endpoint, region: MOTO_REGION, credentials: MOTO_CREDENTIALS });
  try {
    const ce = (await batch.send(new DescribeComputeEnvironmentsCommand({}))).computeEnvironments![0]!;
    for (const jobQueueName of new Set(targets.map((t) => t.jobQueue))) {
      if (jobQueueName === made.queueName) continue;
      await batch.send(
        new CreateJobQueueCommand({
          jobQueueName,
          priority: 1,
          state: 'ENABLED',
          computeEnvironmentOrder: [{ order: 1, computeEnvironment: ce.computeEnvironmentArn! }],
        }),
      );
    }
    for (const jobDefinitionName of new Set(targets.map((t) => t.jobDefinition))) {
      if (jobDefinitionName === made.jobDefinitionName) continue;
      await batch.send(
        new RegisterJobDefinitionCommand({
          jobDefinitionName,
          type: 'container',
          containerProperties: { image: projectImage('batch-task'), vcpus: 1, memory: 256 },
        }),
      );
    }
  } finally {
    batch.destroy();
  }
}
