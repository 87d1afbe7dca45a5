import type { ComputeKind, EnvironmentConfig } from '../config/schema.ts';

export type BatchPlatform = 'EC2' | 'FARGATE';

export const PLATFORM_OF: Record<ComputeKind, BatchPlatform> = {
  ec2: 'EC2',
  spot: 'EC2',
  fargate: 'FARGATE',
  'fargate-spot': 'FARGATE',
};

/** A queue's platform: the batch stack refuses queues that mix them, so the first environment decides. */
export function queuePlatform(
  env: EnvironmentConfig,
  queue: EnvironmentConfig['batch']['jobQueues'][number],
): BatchPlatform {
  const kind = env.batch.computeEnvironments.find((ce) => ce.name === queue.computeEnvironments[0])?.kind ?? 'ec2';
  return PLATFORM_OF[kind];
}

/**
 * What the executor's batch backend needs to know of the batch stack, by the environment's naming scheme
 * (no cross-stack outputs): per workload queue, its Batch job queue and the job definition of the queue's
 * platform (a Fargate queue takes only a Fargate definition), and the default for the `default` queue
 * (or the first queue). Handed to the service as AIRFLEET_BATCH_QUEUES, AIRFLEET_BATCH_JOB_QUEUE and
 * AIRFLEET_BATCH_JOB_DEFINITION (executor/src/backends/batch/batch-config.ts).
 */
export function batchTargets(env: EnvironmentConfig): {
  queues: Record<string, { jobQueue: string; jobDefinition: string }>;
  jobQueue: string;
  jobDefinition: string;
} {
  const prefix = `airfleet-${env.name}-`;
  const queues = Object.fromEntries(
    env.batch.jobQueues.map((q) => [
      q.name,
      { jobQueue: `${prefix}${q.name}`, jobDefinition: `${prefix}task-runner-${queuePlatform(env, q).toLowerCase()}` },
    ]),
  );
  const fallback = queues.default ?? Object.values(queues)[0]!;
  return { queues, ...fallback };
}

/** The same, as the environment variables the service reads. */
export function batchTargetEnv(env: EnvironmentConfig): Record<string, string> {
  const targets = batchTargets(env);
  return {
    // The job definitions log here (stacks/src/components/batch.ts); the backend copies task logs from it.
    AIRFLEET_BATCH_LOG_GROUP: `/airfleet/${env.name}/batch`,
    AIRFLEET_BATCH_JOB_QUEUE: targets.jobQueue,
    AIRFLEET_BATCH_JOB_DEFINITION: targets.jobDefinition,
    AIRFLEET_BATCH_QUEUES: JSON.stringify(targets.queues),
    // The stack's own RUNNABLE limit cancels jobs first; the executor's is the backstop past it.
    AIRFLEET_BATCH_RUNNABLE_TIMEOUT_SECONDS: String(
      Math.max(...env.batch.jobQueues.map((q) => q.runnableTimeoutSeconds)) + 300,
    ),
  };
}

/**
 * The backends the deployed executor runs and what they read: `pool` (the worker pools), `batch` (the
 * batch stack's queues) and `nomad` (the Nomad client pools, through NOMAD_* and AIRFLEET_NOMAD_*). Without
 * AIRFLEET_BACKENDS a service on PostgreSQL runs `pool` alone and refuses every other workload
 * (executor/src/config.ts).
 */
export function executorBackendEnv(env: EnvironmentConfig): Record<string, string> {
  return { AIRFLEET_BACKENDS: EXECUTOR_BACKENDS.join(','), ...batchTargetEnv(env) };
}

export const EXECUTOR_BACKENDS = ['pool', 'batch', 'nomad'] as const;
