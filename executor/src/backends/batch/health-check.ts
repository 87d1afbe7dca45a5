import {
  type BatchClient,
  DescribeJobDefinitionsCommand,
  DescribeJobQueuesCommand,
  type JobDefinition,
  type JobQueueDetail,
} from '@aws-sdk/client-batch';
import type { AwsCaller } from './aws-calls.ts';
import type { BatchConfig } from './batch-config.ts';

/**
 * The start-up check (the seed's CHECK_HEALTH_ON_STARTUP): can this instance reach Batch with its
 * credentials, and are the queues ENABLED and VALID and the job definitions ACTIVE? Returns one line per
 * problem, each saying what to fix (none when all is well), and warnings that do not stop the start.
 */
export async function batchHealthProblems(
  batch: BatchClient,
  caller: AwsCaller,
  config: Pick<BatchConfig, 'region' | 'jobQueue' | 'jobDefinition' | 'queues'>,
): Promise<{ problems: string[]; warnings: string[] }> {
  const queues = [...new Set([config.jobQueue, ...Object.values(config.queues).map((q) => q.jobQueue)])];
  const definitions = [...new Set([config.jobDefinition, ...Object.values(config.queues).map((q) => q.jobDefinition)])];
  let found: JobQueueDetail[];
  try {
    found =
      (await caller.call('DescribeJobQueues', () => batch.send(new DescribeJobQueuesCommand({ jobQueues: queues }))))
        .jobQueues ?? [];
  } catch (error) {
    return { problems: [accessProblem(error, config.region)], warnings: [] };
  }
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const queue of queues) {
    const q = found.find((f) => f.jobQueueName === queue || f.jobQueueArn === queue);
    if (!q) {
      problems.push(
        `job queue '${queue}' does not exist in ${config.region}: create it (the batch stack) or set AIRFLEET_BATCH_JOB_QUEUE / AIRFLEET_BATCH_QUEUES`,
      );
    } else if (q.state !== 'ENABLED') {
      problems.push(
        `job queue '${queue}' is ${q.state}: enable it (aws batch update-job-queue --state ENABLED) or point the executor at another one`,
      );
    } else if (q.status === 'INVALID') {
      problems.push(`job queue '${queue}' is INVALID: ${q.statusReason ?? 'no reason given'}`);
    }
  }
  for (const definition of definitions) {
    let active: JobDefinition | undefined;
    try {
      const byArn = definition.startsWith('arn:');
      const [name, revision] = byArn ? [definition, undefined] : definition.split(':');
      const answer = await caller.call('DescribeJobDefinitions', () =>
        batch.send(
          new DescribeJobDefinitionsCommand(
            byArn || revision ? { jobDefinitions: [definition] } : { jobDefinitionName: name, status: 'ACTIVE' },
          ),
        ),
      );
      active = (answer.jobDefinitions ?? []).find((d) => d.status === 'ACTIVE');
      if (!active && (answer.jobDefinitions ?? []).length > 0) {
        problems.push(
          `job definition '${definition}' is INACTIVE (deregistered): register a revision or set AIRFLEET_BATCH_JOB_DEFINITION`,
        );
        continue;
      }
    } catch (error) {
      problems.push(accessProblem(error, config.region));
      continue;
    }
    if (!active) {
      problems.push(
        `job definition '${definition}' does not exist in ${config.region}: register it (the batch stack) or set AIRFLEET_BATCH_JOB_DEFINITION`,
      );
    } else if ((active.retryStrategy?.attempts ?? 1) > 1) {
      warnings.push(
        `job definition '${definition}' retries jobs (retryStrategy.attempts=${active.retryStrategy?.attempts}); the executor overrides it with 1 on every job, so that a task that started never runs twice`,
      );
    }
  }
  return { problems, warnings };
}

/** Why a call did not get through: credentials, region or network, in words that say what to do. */
function accessProblem(error: unknown, region: string): string {
  const e = error as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const name = e?.name ?? 'Error';
  if (
    /CredentialsProviderError|UnrecognizedClient|InvalidSignature|SignatureDoesNotMatch|ExpiredToken|InvalidClientTokenId|AccessDenied/.test(
      name,
    ) ||
    e?.$metadata?.httpStatusCode === 403
  ) {
    return `AWS credentials were refused or missing (${name}: ${e?.message}): give the service a role or the standard AWS_* variables, with batch:DescribeJobQueues and batch:DescribeJobDefinitions`;
  }
  if (
    /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|TimeoutError/.test(
      `${name} ${(error as { code?: string })?.code ?? ''} ${e?.message ?? ''}`,
    )
  ) {
    return `Batch in region '${region}' could not be reached (${name}: ${e?.message}): check AWS_REGION, AWS_ENDPOINT_URL and the network path`;
  }
  return `Batch answered ${name}: ${e?.message}`;
}
