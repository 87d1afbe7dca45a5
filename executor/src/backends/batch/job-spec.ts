import type { KeyValuePair, ResourceRequirement, SubmitJobCommandInput } from '@aws-sdk/client-batch';
import type { Workload } from '../../domain/workload.ts';
import type { BatchConfig } from './batch-config.ts';

/** Tags every job carries; reconcile and the status loop check them before trusting a job found by name. */
export const TAG_WORKLOAD = 'airfleet:workload-id';
export const TAG_ATTEMPT = 'airfleet:attempt';
/**
 * The environment's resource prefix (`airfleet-<env>-`) on every job: the executor's role may stop only
 * jobs carrying its own environment's tag (stacks/src/lib/executor-permissions.ts).
 */
export const TAG_PREFIX = 'airfleet:resource-prefix';

/**
 * Reasons the backend gives TerminateJob/CancelJob. They come back as the job's `statusReason`, so even a
 * restarted instance can tell a job it stopped from one that failed.
 */
export const STOP_REASONS = {
  cancelled: 'airfleet: cancelled by request',
  unschedulable: 'airfleet: unschedulable',
} as const;

/**
 * `<prefix>-<workload id>-<attempt>`: one name per attempt, so that a job found by name after a crash is
 * known to be this attempt's (Batch allows 128 letters, digits, hyphens and underscores).
 */
export function jobName(prefix: string, workloadId: string, attempt: number): string {
  return `${prefix}-${workloadId}-${attempt}`;
}

/** The Batch queue and job definition for a workload: execConfig wins, then the workload's queue, then the default. */
export function targetOf(
  workload: Pick<Workload, 'queue'>,
  kwargs: Record<string, unknown>,
  config: Pick<BatchConfig, 'jobQueue' | 'jobDefinition' | 'queues'>,
): { jobQueue: string; jobDefinition: string } {
  const mapped = config.queues[workload.queue];
  return {
    jobQueue: typeof kwargs.jobQueue === 'string' ? kwargs.jobQueue : (mapped?.jobQueue ?? config.jobQueue),
    jobDefinition:
      typeof kwargs.jobDefinition === 'string' ? kwargs.jobDefinition : (mapped?.jobDefinition ?? config.jobDefinition),
  };
}

/**
 * A recursive update, as the Airflow Batch executor merges `exec_config` over `submit_job_kwargs`: nested
 * objects are merged key by key, anything else (arrays included) is replaced.
 */
export function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The SubmitJob request of one attempt: `submitJobKwargs` deep-merged with the task's `execConfig.batch`,
 * then what the executor owns laid over it: the job's name, the command, the environment (the
 * workload's, plus its id and attempt, plus the id of the attempt's secret when it has secrets; never a
 * secret value), the resources, the tags, and `retryStrategy.attempts = 1`: a Batch-side retry would run a
 * task that had started a second time, so retries are the service's decision (infrastructure retries as
 * new attempts, only for jobs that never started).
 */
export function submitJobInput(
  workload: Workload,
  attempt: number,
  config: BatchConfig,
  secretId: string | null,
): SubmitJobCommandInput {
  const exec = isPlainObject(workload.execConfig.batch) ? workload.execConfig.batch : {};
  const kwargs = deepMerge(config.submitJobKwargs, exec);
  const { jobQueue, jobDefinition } = targetOf(workload, kwargs, config);
  const overrides = isPlainObject(kwargs.containerOverrides) ? kwargs.containerOverrides : {};
  const env = new Map<string, string>();
  for (const pair of (Array.isArray(overrides.environment) ? overrides.environment : []) as KeyValuePair[]) {
    if (pair?.name) env.set(pair.name, pair.value ?? '');
  }
  for (const [name, value] of Object.entries(workload.env)) env.set(name, value);
  env.set('AIRFLEET_WORKLOAD_ID', workload.id);
  env.set('AIRFLEET_ATTEMPT', String(attempt));
  if (secretId) env.set('AIRFLEET_SECRET_ENV_ID', secretId);
  else env.delete('AIRFLEET_SECRET_ENV_ID');
  const resources = new Map<string, string>();
  for (const r of (Array.isArray(overrides.resourceRequirements)
    ? overrides.resourceRequirements
    : []) as ResourceRequirement[]) {
    if (r?.type && r.value) resources.set(r.type, r.value);
  }
  if (workload.resources.cpu !== undefined) resources.set('VCPU', String(workload.resources.cpu));
  if (workload.resources.memoryMb !== undefined) resources.set('MEMORY', String(workload.resources.memoryMb));
  if (workload.resources.gpus) resources.set('GPU', String(workload.resources.gpus));
  const tags = isPlainObject(kwargs.tags) ? (kwargs.tags as Record<string, string>) : {};
  return {
    ...kwargs,
    jobName: jobName(config.jobNamePrefix, workload.id, attempt),
    jobQueue,
    jobDefinition,
    containerOverrides: {
      ...overrides,
      command: secretId ? [config.entrypoint, '--', ...workload.command] : [...workload.command],
      environment: [...env].map(([name, value]) => ({ name, value })),
      ...(resources.size > 0 ? { resourceRequirements: [...resources].map(([type, value]) => ({ type, value })) } : {}),
    },
    retryStrategy: { ...(isPlainObject(kwargs.retryStrategy) ? kwargs.retryStrategy : {}), attempts: 1 },
    tags: { ...tags, [TAG_WORKLOAD]: workload.id, [TAG_ATTEMPT]: String(attempt), [TAG_PREFIX]: config.resourcePrefix },
    propagateTags: kwargs.propagateTags === undefined ? true : Boolean(kwargs.propagateTags),
  } as SubmitJobCommandInput;
}
