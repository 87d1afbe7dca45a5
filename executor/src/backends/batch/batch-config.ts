import { z } from 'zod';
import { ConfigError } from '../../errors.ts';

/**
 * Every setting of the Batch backend with its default, read once from the environment at start-up
 * (the names the stacks set: stacks/src/components/executor.ts and stacks/jobs/executor.nomad.hcl).
 *
 * The Airflow Batch executor's options map as follows: JOB_QUEUE → `jobQueue` (and `queues` per Airflow
 * queue), JOB_DEFINITION → `jobDefinition`, JOB_NAME → `jobNamePrefix` (each attempt gets its own name
 * from it), REGION_NAME → `region`, AWS_CONN_ID → the standard AWS credential chain, SUBMIT_JOB_KWARGS →
 * `submitJobKwargs` (with the task's `execConfig.batch` deep-merged over it), MAX_SUBMIT_JOB_ATTEMPTS →
 * `maxSubmitAttempts`, CHECK_HEALTH_ON_STARTUP → `checkHealthOnStartup`.
 */
const queueTarget = z.object({
  jobQueue: z.string().min(1, 'jobQueue must name a job queue (name or ARN)'),
  jobDefinition: z.string().min(1, 'jobDefinition must name a job definition (name, name:revision or ARN)'),
});

export const batchConfigSchema = z
  .object({
    region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'AWS_REGION must be a region name such as eu-west-1'),
    /** Endpoint for emulators (moto); AWS's own endpoints otherwise. */
    endpoint: z.string().url('the endpoint must be a URL such as http://127.0.0.1:5000').optional(),
    /** `airfleet-<env>-`: every queue, job definition and per-attempt secret of the environment starts so. */
    resourcePrefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'AIRFLEET_BATCH_RESOURCE_PREFIX may hold only letters, digits, _ and -'),
    /** Job queue for workloads of the `default` queue and of queues not in `queues` (name or ARN). */
    jobQueue: z.string().min(1),
    /** Job definition used with `jobQueue`. */
    jobDefinition: z.string().min(1),
    /** Per workload queue: its Batch job queue and job definition (a Fargate queue needs a Fargate definition). */
    queues: z.record(z.string(), queueTarget).default({}),
    /** Job names are `<jobNamePrefix>-<workload id>-<attempt>` (at most 128 characters). */
    jobNamePrefix: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,60}$/, 'the job name prefix may hold letters, digits, _ and -'),
    /** Arguments of every SubmitJob (the seed's SUBMIT_JOB_KWARGS), in the API's own field names. */
    submitJobKwargs: z.record(z.string(), z.unknown()).default({}),
    /** Tries of one SubmitJob on errors that are not throttling (5xx, network); throttling waits instead. */
    maxSubmitAttempts: z.number().int().min(1).max(20).default(3),
    checkHealthOnStartup: z.boolean().default(true),
    /** Batch API calls per second for this instance, all operations together (SubmitJob is capped at 50 TPS). */
    maxTps: z.number().positive().max(50).default(10),
    /** How many calls may go at once after a quiet spell. @default maxTps */
    burst: z.number().int().min(1).max(100).optional(),
    /** CloudWatch Logs calls per second (GetLogEvents is capped at 10 TPS per account and region). */
    logsTps: z.number().positive().max(25).default(5),
    /** How long a throttled call keeps trying before it fails, ms. */
    throttleBudgetMs: z.number().int().min(1_000).max(3_600_000).default(300_000),
    /** How often every live job is described (one loop, 100 jobs per DescribeJobs), ms. */
    pollIntervalMs: z.number().int().min(100).max(300_000).default(5_000),
    /** How often a running job's log stream is copied, ms. */
    logIntervalMs: z.number().int().min(100).max(600_000).default(10_000),
    /** A job RUNNABLE this long is terminated and fails `unschedulable` (retried as a new attempt), s. */
    runnableTimeoutSeconds: z.number().int().min(1).max(604_800).default(1_800),
    /**
     * ListJobs and DescribeJobs are eventually consistent: a job submitted just now may not be listed yet.
     * An attempt is only declared absent (and submitted again) after this long, s.
     */
    reconcileGraceSeconds: z.number().int().min(0).max(3_600).default(120),
    /** How far back reconcile looks for an attempt's job before its claim, s (clock skew, slow submits). */
    lookBackSeconds: z.number().int().min(0).max(86_400).default(900),
    /** Log group of the job's stream when the job does not say (the awslogs default of Batch). */
    logGroup: z.string().min(1).default('/aws/batch/job'),
    /** Program in the job's image that fetches the secret environment and runs the command. */
    entrypoint: z.string().min(1).default('/opt/airfleet/bin/airfleet-batch-entry'),
  })
  .strict();

export type BatchConfig = z.output<typeof batchConfigSchema>;

/**
 * Reads the backend's settings from the environment and validates them, listing every problem at once.
 * AWS_REGION is required; the resource prefix comes from AIRFLEET_BATCH_RESOURCE_PREFIX or, failing
 * that, from AIRFLEET_ENVIRONMENT (`airfleet-<env>-`); queue and job definition default to the stacks'
 * names (`<prefix>default`, `<prefix>task-runner-ec2`).
 */
export function batchConfigFromEnv(env: NodeJS.ProcessEnv = process.env): BatchConfig {
  const problems: string[] = [];
  const json = (name: string): unknown => {
    const text = env[name];
    if (text === undefined || text === '') return undefined;
    try {
      return JSON.parse(text);
    } catch (error) {
      problems.push(`${name}: not valid JSON (${(error as Error).message})`);
      return undefined;
    }
  };
  const num = (name: string): number | undefined => {
    const text = env[name];
    if (text === undefined || text === '') return undefined;
    const n = Number(text);
    if (!Number.isFinite(n)) problems.push(`${name}=${text} is not a number`);
    return n;
  };
  const bool = (name: string): boolean | undefined => {
    const text = env[name]?.toLowerCase();
    if (text === undefined || text === '') return undefined;
    if (['1', 'true', 'yes'].includes(text)) return true;
    if (['0', 'false', 'no'].includes(text)) return false;
    problems.push(`${name}=${env[name]} must be true or false`);
    return undefined;
  };
  const environment = env.AIRFLEET_ENVIRONMENT;
  const prefix = env.AIRFLEET_BATCH_RESOURCE_PREFIX || (environment ? `airfleet-${environment}-` : undefined);
  if (!prefix) {
    problems.push(
      'AIRFLEET_BATCH_RESOURCE_PREFIX (or AIRFLEET_ENVIRONMENT) is not set: the batch backend cannot name its queues and job definitions',
    );
  }
  if (!env.AWS_REGION && !env.AWS_DEFAULT_REGION)
    problems.push('AWS_REGION is not set: name the region of the Batch queues');
  const input = {
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || '',
    endpoint: env.AIRFLEET_BATCH_ENDPOINT_URL || env.AWS_ENDPOINT_URL || undefined,
    resourcePrefix: prefix ?? 'unset',
    jobQueue: env.AIRFLEET_BATCH_JOB_QUEUE || `${prefix ?? ''}default`,
    jobDefinition: env.AIRFLEET_BATCH_JOB_DEFINITION || `${prefix ?? ''}task-runner-ec2`,
    queues: json('AIRFLEET_BATCH_QUEUES'),
    jobNamePrefix: env.AIRFLEET_BATCH_JOB_NAME_PREFIX || (prefix ?? 'airfleet-').replace(/-+$/, ''),
    submitJobKwargs: json('AIRFLEET_BATCH_SUBMIT_JOB_KWARGS'),
    maxSubmitAttempts: num('AIRFLEET_BATCH_MAX_SUBMIT_ATTEMPTS'),
    checkHealthOnStartup: bool('AIRFLEET_BATCH_CHECK_HEALTH_ON_STARTUP'),
    maxTps: num('AIRFLEET_BATCH_MAX_TPS'),
    burst: num('AIRFLEET_BATCH_BURST'),
    logsTps: num('AIRFLEET_BATCH_LOGS_TPS'),
    throttleBudgetMs: num('AIRFLEET_BATCH_THROTTLE_BUDGET_MS'),
    pollIntervalMs: num('AIRFLEET_BATCH_POLL_INTERVAL_MS'),
    logIntervalMs: num('AIRFLEET_BATCH_LOG_INTERVAL_MS'),
    runnableTimeoutSeconds: num('AIRFLEET_BATCH_RUNNABLE_TIMEOUT_SECONDS'),
    reconcileGraceSeconds: num('AIRFLEET_BATCH_RECONCILE_GRACE_SECONDS'),
    lookBackSeconds: num('AIRFLEET_BATCH_LOOK_BACK_SECONDS'),
    logGroup: env.AIRFLEET_BATCH_LOG_GROUP || undefined,
    entrypoint: env.AIRFLEET_BATCH_ENTRYPOINT || undefined,
  };
  const result = batchConfigSchema.safeParse(
    Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)),
  );
  if (!result.success) {
    for (const issue of result.error.issues)
      problems.push(`${ENV_NAMES[String(issue.path[0])] ?? issue.path.join('.')}: ${issue.message}`);
  }
  if (problems.length > 0 || !result.success) {
    throw new ConfigError(
      `invalid batch backend configuration:\n${[...new Set(problems)].map((p) => `  - ${p}`).join('\n')}`,
    );
  }
  return result.data;
}

const ENV_NAMES: Record<string, string> = {
  region: 'AWS_REGION',
  endpoint: 'AWS_ENDPOINT_URL',
  resourcePrefix: 'AIRFLEET_BATCH_RESOURCE_PREFIX',
  jobQueue: 'AIRFLEET_BATCH_JOB_QUEUE',
  jobDefinition: 'AIRFLEET_BATCH_JOB_DEFINITION',
  queues: 'AIRFLEET_BATCH_QUEUES',
  jobNamePrefix: 'AIRFLEET_BATCH_JOB_NAME_PREFIX',
  submitJobKwargs: 'AIRFLEET_BATCH_SUBMIT_JOB_KWARGS',
  maxSubmitAttempts: 'AIRFLEET_BATCH_MAX_SUBMIT_ATTEMPTS',
  checkHealthOnStartup: 'AIRFLEET_BATCH_CHECK_HEALTH_ON_STARTUP',
  maxTps: 'AIRFLEET_BATCH_MAX_TPS',
  burst: 'AIRFLEET_BATCH_BURST',
  logsTps: 'AIRFLEET_BATCH_LOGS_TPS',
  throttleBudgetMs: 'AIRFLEET_BATCH_THROTTLE_BUDGET_MS',
  pollIntervalMs: 'AIRFLEET_BATCH_POLL_INTERVAL_MS',
  logIntervalMs: 'AIRFLEET_BATCH_LOG_INTERVAL_MS',
  runnableTimeoutSeconds: 'AIRFLEET_BATCH_RUNNABLE_TIMEOUT_SECONDS',
  reconcileGraceSeconds: 'AIRFLEET_BATCH_RECONCILE_GRACE_SECONDS',
  lookBackSeconds: 'AIRFLEET_BATCH_LOOK_BACK_SECONDS',
  logGroup: 'AIRFLEET_BATCH_LOG_GROUP',
  entrypoint: 'AIRFLEET_BATCH_ENTRYPOINT',
};
