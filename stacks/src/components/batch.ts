import { BatchComputeEnvironment } from '@cdktf/provider-aws/lib/batch-compute-environment/index.js';
import { BatchJobDefinition } from '@cdktf/provider-aws/lib/batch-job-definition/index.js';
import { BatchJobQueue } from '@cdktf/provider-aws/lib/batch-job-queue/index.js';
import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group/index.js';
import { type ITerraformDependable, TerraformOutput, Token } from 'cdktf';
import type { Construct } from 'constructs';
import { AirfleetStack, type StateOptions } from '../airfleet-stack.ts';
import type { ComputeEnvironmentConfig, ComputeKind, EnvironmentConfig, SecretReference } from '../config/schema.ts';
import { attemptSecretPrefix } from '../lib/executor-permissions.ts';
import { fargateSizeProblem } from '../lib/fargate.ts';
import { type PolicyStatement, ServiceRole } from '../lib/iam.ts';
import { HardenedLaunchTemplate } from '../lib/launch-template.ts';
import type { NetworkStack } from './network.ts';
import type { RegistryStack } from './registry.ts';

export interface BatchStackProps {
  env: EnvironmentConfig;
  state: StateOptions;
  network: NetworkStack;
  registry: RegistryStack;
}

export type BatchPlatform = 'EC2' | 'FARGATE';

const COMPUTE_TYPES: Record<ComputeKind, { type: string; platform: BatchPlatform }> = {
  ec2: { type: 'EC2', platform: 'EC2' },
  spot: { type: 'SPOT', platform: 'EC2' },
  fargate: { type: 'FARGATE', platform: 'FARGATE' },
  'fargate-spot': { type: 'FARGATE_SPOT', platform: 'FARGATE' },
};

/**
 * Why Batch may leave a job in RUNNABLE for good. Each gets a cancel action on every queue, so the executor
 * sees the job fail (and reports `unschedulable`) instead of waiting for capacity that will not come.
 */
export const STUCK_RUNNABLE_REASONS = [
  'CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY',
  'MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE',
  'MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT',
] as const;

/**
 * AWS Batch for Airflow tasks: compute environments as configured (EC2 On-Demand, Spot, Fargate), job
 * queues with priorities, compute-environment order and a RUNNABLE time limit, one task-runner job
 * definition per platform the queues use, the four IAM roles with least privilege, and the log group.
 */
export class BatchStack extends AirfleetStack {
  readonly computeEnvironments: Record<string, BatchComputeEnvironment> = {};
  readonly jobQueues: Record<string, BatchJobQueue> = {};
  readonly jobDefinitions: Partial<Record<BatchPlatform, BatchJobDefinition>> = {};
  readonly logGroup: CloudwatchLogGroup;

  constructor(scope: Construct, props: BatchStackProps) {
    super(scope, { ...props, component: 'batch' });
    const { batch, aws } = this.env;
    const { network, registry } = props;

    this.logGroup = new CloudwatchLogGroup(this, 'logs', {
      name: `/airfleet/${this.env.name}/batch`,
      retentionInDays: batch.logRetentionDays,
      ...(network.logsKey ? { kmsKeyId: network.logsKey.arn } : {}),
    });

    // --- roles -------------------------------------------------------------------------------------------
    const service = new ServiceRole(this, 'service-role', {
      name: this.resourceName('batch-service'),
      description: 'AWS Batch manages the compute environments',
      assumedBy: 'batch.amazonaws.com',
      managedPolicies: ['service-role/AWSBatchServiceRole'],
      partition: this.partition,
    });
    const usesEc2 = batch.computeEnvironments.some((ce) => COMPUTE_TYPES[ce.kind].platform === 'EC2');
    const instance = usesEc2
      ? new ServiceRole(this, 'instance-role', {
          name: this.resourceName('batch-instance'),
          description: 'ECS agent on Batch EC2 instances',
          assumedBy: 'ec2.amazonaws.com',
          managedPolicies: ['service-role/AmazonEC2ContainerServiceforEC2Role'],
          instanceProfile: true,
          partition: this.partition,
        })
      : undefined;
    const taskRunner = registry.repositories['task-runner'];
    const execution = new ServiceRole(this, 'execution-role', {
      name: this.resourceName('batch-execution'),
      description: 'Pulls the task-runner image, writes its logs, reads its secrets',
      assumedBy: 'ecs-tasks.amazonaws.com',
      statements: [
        { Sid: 'EcrToken', Action: 'ecr:GetAuthorizationToken', Resource: '*' },
        {
          Sid: 'PullTaskRunner',
          Action: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability'],
          Resource: taskRunner.arn,
        },
        { Sid: 'WriteLogs', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: `${this.logGroup.arn}:*` },
        ...this.secretStatements(batch.jobDefinition.secrets),
      ],
      partition: this.partition,
    });
    // What the task itself may do in AWS: read its attempt's secret environment (airfleet-batch-entry, the
    // job's first process, does; see docs/batch-secrets.md), nothing else until a deployment grants more.
    const job = new ServiceRole(this, 'job-role', {
      name: this.resourceName('batch-job'),
      description: 'Role of the Airflow task inside the container: its attempt secret only, by default',
      assumedBy: 'ecs-tasks.amazonaws.com',
      statements: [
        {
          Sid: 'ReadAttemptSecrets',
          Action: 'secretsmanager:GetSecretValue',
          Resource: this.arn('secretsmanager', `secret:${attemptSecretPrefix(this.env.name)}*`),
        },
      ],
      partition: this.partition,
    });

    // --- compute environments ----------------------------------------------------------------------------
    const launchTemplate = usesEc2
      ? new HardenedLaunchTemplate(this, 'launch-template', {
          name: this.resourceName('batch'),
          rootVolumeGb: 50,
          instanceTags: { Name: this.resourceName('batch') },
        })
      : undefined;
    for (const ce of batch.computeEnvironments) {
      this.computeEnvironments[ce.name] = this.computeEnvironment(ce, {
        serviceRoleArn: service.arn,
        dependsOn: service.grants,
        instanceProfileArn: instance?.instanceProfile?.arn,
        launchTemplateId: launchTemplate?.template.id,
        launchTemplateVersion: launchTemplate ? Token.asString(launchTemplate.template.latestVersion) : undefined,
        subnetIds: network.privateSubnets.map((s) => s.id),
        securityGroupId: network.securityGroups.batch.id,
      });
    }

    // --- queues ------------------------------------------------------------------------------------------
    const kinds = Object.fromEntries(batch.computeEnvironments.map((ce) => [ce.name, ce.kind]));
    for (const queue of batch.jobQueues) {
      this.jobQueues[queue.name] = new BatchJobQueue(this, `queue-${queue.name}`, {
        name: this.resourceName(queue.name),
        priority: queue.priority,
        state: 'ENABLED',
        computeEnvironmentOrder: queue.computeEnvironments.map((name, i) => ({
          order: i + 1,
          computeEnvironment: this.computeEnvironments[name]!.arn,
        })),
        jobStateTimeLimitAction: STUCK_RUNNABLE_REASONS.map((reason) => ({
          action: 'CANCEL',
          state: 'RUNNABLE',
          reason,
          maxTimeSeconds: queue.runnableTimeoutSeconds,
        })),
      });
      this.node.addValidation({
        validate: () => {
          const platforms = new Set(queue.computeEnvironments.map((name) => COMPUTE_TYPES[kinds[name]!].platform));
          return platforms.size > 1
            ? [
                `job queue "${queue.name}" mixes EC2/Spot and Fargate compute environments (${queue.computeEnvironments.join(', ')}); ` +
                  'AWS Batch allows only one kind per queue: split it into two queues',
              ]
            : [];
        },
      });
    }

    // --- job definitions ---------------------------------------------------------------------------------
    const platforms = new Set(
      batch.jobQueues.flatMap((q) => q.computeEnvironments.map((name) => COMPUTE_TYPES[kinds[name]!].platform)),
    );
    const { vcpus, memoryMiB } = batch.jobDefinition;
    if (platforms.has('FARGATE')) {
      this.node.addValidation({
        validate: () => {
          const problem = fargateSizeProblem(vcpus, memoryMiB);
          return problem ? [`batch.jobDefinition (used by a Fargate queue): ${problem}`] : [];
        },
      });
    }
    for (const platform of [...platforms].sort()) {
      this.jobDefinitions[platform] = new BatchJobDefinition(this, `task-runner-${platform.toLowerCase()}`, {
        name: this.resourceName('task-runner', platform.toLowerCase()),
        type: 'container',
        platformCapabilities: [platform],
        propagateTags: true,
        containerProperties: JSON.stringify(
          this.containerProperties(platform, {
            image: `${taskRunner.repositoryUrl}:${this.env.imageTag}`,
            executionRoleArn: execution.arn,
            jobRoleArn: job.arn,
            region: aws.region,
          }),
        ),
        // One attempt per job, never a Batch-side retry: retrying a host failure inside the job re-runs a
        // task that had started. The executor decides instead: a job that never reached RUNNING is
        // submitted again as a new attempt, one that started fails as `lost` (and it also sends
        // attempts 1 with every SubmitJob; executor/src/backends/batch/job-spec.ts).
        retryStrategy: { attempts: 1 },
        timeout: { attemptDurationSeconds: batch.jobDefinition.timeoutSeconds },
      });
    }

    new TerraformOutput(this, 'job_queue_arns', {
      value: Object.fromEntries(Object.entries(this.jobQueues).map(([name, q]) => [name, q.arn])),
    });
  }

  private computeEnvironment(
    ce: ComputeEnvironmentConfig,
    deps: {
      serviceRoleArn: string;
      dependsOn: ITerraformDependable[];
      instanceProfileArn: string | undefined;
      launchTemplateId: string | undefined;
      launchTemplateVersion: string | undefined;
      subnetIds: string[];
      securityGroupId: string;
    },
  ): BatchComputeEnvironment {
    const { type, platform } = COMPUTE_TYPES[ce.kind];
    const ec2 =
      platform === 'EC2'
        ? {
            minVcpus: ce.minVcpus,
            instanceType: ce.instanceTypes ?? ['optimal'],
            instanceRole: deps.instanceProfileArn!,
            allocationStrategy: ce.kind === 'spot' ? 'SPOT_PRICE_CAPACITY_OPTIMIZED' : 'BEST_FIT_PROGRESSIVE',
            ...(ce.kind === 'spot' ? { bidPercentage: ce.spotBidPercentage ?? 100 } : {}),
            // A pinned version: `$Latest` would let an edit of the template reach new instances unplanned;
            // a new version is a planned update of the compute environment.
            launchTemplate: { launchTemplateId: deps.launchTemplateId!, version: deps.launchTemplateVersion! },
            // The instances Batch starts (Fargate takes no tags here).
            tags: this.tags(),
          }
        : {};
    return new BatchComputeEnvironment(this, `compute-${ce.name}`, {
      computeEnvironmentName: this.resourceName(ce.name),
      type: 'MANAGED',
      state: 'ENABLED',
      serviceRole: deps.serviceRoleArn,
      computeResources: {
        type,
        maxVcpus: ce.maxVcpus,
        subnets: deps.subnetIds,
        securityGroupIds: [deps.securityGroupId],
        ...ec2,
      },
      // Batch needs its role's permissions while it tears the environment down.
      dependsOn: deps.dependsOn,
    });
  }

  /** Secrets by name: the IAM resource needs the random suffix Secrets Manager appends to every ARN. */
  private secretStatements(secrets: readonly SecretReference[]): PolicyStatement[] {
    if (secrets.length === 0) return [];
    return [
      {
        Sid: 'ReadTaskSecrets',
        Action: 'secretsmanager:GetSecretValue',
        Resource: [...new Set(secrets.map((s) => this.arn('secretsmanager', `secret:${s.secretName}-??????`)))],
      },
    ];
  }

  private containerProperties(
    platform: BatchPlatform,
    props: { image: string; executionRoleArn: string; jobRoleArn: string; region: string },
  ) {
    const { jobDefinition } = this.env.batch;
    return {
      // No command: the executor passes the workload's command with every SubmitJob.
      image: props.image,
      executionRoleArn: props.executionRoleArn,
      jobRoleArn: props.jobRoleArn,
      resourceRequirements: [
        { type: 'VCPU', value: String(jobDefinition.vcpus) },
        { type: 'MEMORY', value: String(jobDefinition.memoryMiB) },
      ],
      environment: [
        { name: 'AIRFLEET_ENVIRONMENT', value: this.env.name },
        { name: 'AWS_DEFAULT_REGION', value: props.region },
      ],
      secrets: jobDefinition.secrets.map((s) => ({
        name: s.name,
        // A partial ARN (no random suffix) resolves in the task's own account and region.
        valueFrom: `${this.arn('secretsmanager', `secret:${s.secretName}`)}${s.jsonKey ? `:${s.jsonKey}::` : ''}`,
      })),
      logConfiguration: {
        logDriver: 'awslogs',
        options: {
          'awslogs-group': this.logGroup.name,
          'awslogs-region': props.region,
          'awslogs-stream-prefix': 'task-runner',
        },
      },
      privileged: false,
      readonlyRootFilesystem: false, // Airflow writes to $AIRFLOW_HOME
      ...(platform === 'FARGATE'
        ? {
            networkConfiguration: { assignPublicIp: 'DISABLED' },
            fargatePlatformConfiguration: { platformVersion: 'LATEST' },
          }
        : {}),
    };
  }
}
