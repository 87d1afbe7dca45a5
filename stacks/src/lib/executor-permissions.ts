import type { AirfleetStack } from '../airfleet-stack.ts';
import type { PolicyStatement } from './iam.ts';
import { tokenSecretStatements } from './token-secrets.ts';

/**
 * Name prefix of the per-attempt secrets the batch backend makes for a job's secret environment
 * (executor/src/backends/batch/attempt-secrets.ts): `<AIRFLEET_BATCH_RESOURCE_PREFIX>attempts/`.
 */
export function attemptSecretPrefix(environment: string): string {
  return `airfleet-${environment}-attempts/`;
}

/** The tag the executor puts on every Batch job (executor/src/backends/batch/job-spec.ts, TAG_PREFIX). */
export const BATCH_JOB_PREFIX_TAG = 'airfleet:resource-prefix';

/** CloudWatch namespace and metric of the queue backlog the executor publishes for pool autoscaling. */
export const BACKLOG_METRIC = { namespace: 'Airfleet', name: 'BacklogPerInstance' } as const;

/**
 * What the executor service may do in AWS, wherever it runs (ECS task role, or the Nomad client role when
 * it runs as a Nomad job). Resources are named by pattern from the environment's naming scheme, so no
 * stack needs another stack's outputs for this: every Batch queue and job definition of the environment
 * is `airfleet-<env>-*`.
 */
export function executorStatements(stack: AirfleetStack): PolicyStatement[] {
  const prefix = `airfleet-${stack.env.name}-`;
  return [
    {
      Sid: 'SubmitBatchJobs',
      Action: 'batch:SubmitJob',
      Resource: [stack.arn('batch', `job-queue/${prefix}*`), stack.arn('batch', `job-definition/${prefix}*`)],
    },
    {
      // SubmitJob with tags (workload id, attempt, resource prefix) needs TagResource on the new job: only
      // with this environment's prefix tag, which the executor puts on every job
      // (executor/src/backends/batch/job-spec.ts).
      Sid: 'TagNewBatchJobs',
      Action: 'batch:TagResource',
      Resource: stack.arn('batch', 'job/*'),
      Condition: { StringEquals: { [`aws:RequestTag/${BATCH_JOB_PREFIX_TAG}`]: prefix } },
    },
    {
      // Stopping a job (CancelJob before it starts, TerminateJob after): only this environment's jobs, by
      // their tag; job ARNs carry no name a pattern could match.
      Sid: 'StopOwnBatchJobs',
      Action: ['batch:CancelJob', 'batch:TerminateJob'],
      Resource: stack.arn('batch', 'job/*'),
      Condition: { StringEquals: { [`aws:ResourceTag/${BATCH_JOB_PREFIX_TAG}`]: prefix } },
    },
    {
      // These actions support no resource-level permissions.
      Sid: 'WatchBatchJobs',
      Action: ['batch:DescribeJobs', 'batch:ListJobs', 'batch:DescribeJobQueues', 'batch:DescribeJobDefinitions'],
      Resource: '*',
    },
    {
      // One secret per attempt holds its secret environment, out of the job spec; deleted when it ends.
      Sid: 'ManageAttemptSecrets',
      Action: [
        'secretsmanager:CreateSecret',
        'secretsmanager:PutSecretValue',
        'secretsmanager:DeleteSecret',
        'secretsmanager:TagResource',
      ],
      Resource: stack.arn('secretsmanager', `secret:${attemptSecretPrefix(stack.env.name)}*`),
    },
    {
      Sid: 'ReadBatchLogs',
      Action: ['logs:GetLogEvents', 'logs:FilterLogEvents'],
      Resource: stack.arn('logs', `log-group:/airfleet/${stack.env.name}/batch:*`),
    },
    {
      Sid: 'PublishBacklogMetric',
      Action: 'cloudwatch:PutMetricData',
      Resource: '*',
      Condition: { StringEquals: { 'cloudwatch:namespace': BACKLOG_METRIC.namespace } },
    },
    {
      Sid: 'ReadPools',
      Action: 'autoscaling:DescribeAutoScalingGroups',
      Resource: '*',
    },
    {
      // Target tracking cannot leave 0 instances: the executor's autoscaler sets the first desired capacity
      // (executor/src/autoscaler/drivers/aws-driver.ts), on the environment's worker groups only.
      Sid: 'StartPoolsFromZero',
      Action: 'autoscaling:SetDesiredCapacity',
      Resource: stack.arn(
        'autoscaling',
        `autoScalingGroup:*:autoScalingGroupName/airfleet-${stack.env.name}-workers-*`,
      ),
    },
    ...tokenSecretStatements(stack),
  ];
}

/** The RDS CA bundle in the executor image (images/executor/prepare.sh), for PGSSLROOTCERT. */
export const RDS_CA_BUNDLE = '/opt/airfleet/rds-ca-bundle.pem';

/** Reading the executor's database secret (encrypted with the database key). */
export function databaseSecretStatements(connection: {
  executorSecretArn: string;
  kmsKeyArn: string;
}): PolicyStatement[] {
  return [
    { Sid: 'ReadDatabaseSecret', Action: 'secretsmanager:GetSecretValue', Resource: connection.executorSecretArn },
    { Sid: 'DecryptDatabaseSecret', Action: 'kms:Decrypt', Resource: connection.kmsKeyArn },
  ];
}
