import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../../errors.ts';

/**
 * Every setting of the Nomad backend with its default, read once from the environment at start-up.
 *
 * Nomad's own variables (`NOMAD_ADDR`, `NOMAD_TOKEN`, `NOMAD_NAMESPACE`, `NOMAD_REGION`, `NOMAD_CACERT`,
 * `NOMAD_CLIENT_CERT`, `NOMAD_CLIENT_KEY`, `NOMAD_TLS_SERVER_NAME`, `NOMAD_SKIP_VERIFY`) mean what they mean
 * to the `nomad` CLI; the stacks' executor job sets them (stacks/jobs/executor.nomad.hcl). airfleet's own
 * settings are `AIRFLEET_NOMAD_*` (docs/nomad-backend.md has the table).
 */
export const nomadConfigSchema = z
  .object({
    /** `http://host:4646`, `https://host:4646` or `unix:///path/api.sock` (the Task API socket). */
    address: z
      .string()
      .regex(/^(https?:\/\/[^/\s]+\/?|unix:\/\/\/.+)$/, 'NOMAD_ADDR must be http(s)://host:port or unix:///path'),
    token: z.string().min(1).optional(),
    namespace: z.string().regex(/^[a-zA-Z0-9-]{1,128}$/, 'NOMAD_NAMESPACE may hold letters, digits and -'),
    region: z.string().min(1).optional(),
    /** PEM contents (the NOMAD_CACERT/NOMAD_CLIENT_CERT/NOMAD_CLIENT_KEY files, or AIRFLEET_NOMAD_*_PEM values). */
    caCert: z.string().optional(),
    clientCert: z.string().optional(),
    clientKey: z.string().optional(),
    tlsServerName: z.string().min(1).optional(),
    skipVerify: z.boolean().default(false),
    /** Datacenters of every job (Nomad ≥ 1.5 takes `*`). */
    datacenters: z.array(z.string().min(1)).min(1).default(['*']),
    nodePool: z.string().min(1).optional(),
    /** Image of tasks whose workload names none and whose template has none. */
    defaultImage: z.string().min(1).optional(),
    /** The job template: Nomad job JSON (`{"Job": …}` or the job itself) or HCL, parsed by the server. */
    jobTemplate: z.string().min(1).optional(),
    /** Directory `execConfig.nomad.templatePath` is resolved in; without it per-workload paths are refused. */
    templateDir: z.string().min(1).optional(),
    /** Host volumes mounted read-only into every task when the template has no volumes: name → destination. */
    hostVolumes: z.record(z.string(), z.string()).default({ config: '/opt/airflow/config', dags: '/opt/airflow/dags' }),
    /** An attempt not running this long after its claim fails `unschedulable` (the claim time is in the database). */
    allocPendingTimeoutSeconds: z.number().int().min(1).max(604_800).default(600),
    /** Jobs this instance runs at once (the dispatcher claims no more). */
    parallelism: z.number().int().min(1).max(100_000).default(1_000),
    /** Tries of one job registration on 5xx and network errors, with exponential backoff from `submitBackoffMs`. */
    maxSubmitAttempts: z.number().int().min(1).max(20).default(3),
    submitBackoffMs: z.number().int().min(0).max(60_000).default(500),
    /** Seconds an ended job is kept (stopped, logs copied) before it is purged. */
    purgeDelaySeconds: z.number().int().min(0).max(604_800).default(0),
    /** Jobs are `<jobPrefix>-<workload id>-<attempt>`. */
    jobPrefix: z.string().regex(/^[a-z0-9][a-z0-9-]{0,40}$/, 'AIRFLEET_NOMAD_JOB_PREFIX may hold a-z, 0-9 and -'),
    checkHealthOnStartup: z.boolean().default(true),
    /** HTTP connections to Nomad besides the event stream (Nomad allows 100 per client address). */
    maxConnections: z.number().int().min(1).max(90).default(16),
    /** How often running tasks' logs are copied, ms. */
    logIntervalMs: z.number().int().min(100).max(600_000).default(5_000),
    /** Rotation of task logs by Nomad (the job's `logs` block). */
    logMaxFiles: z.number().int().min(1).max(100).default(10),
    logMaxFileSizeMb: z.number().int().min(1).max(1_000).default(10),
    /** Pending-timeout and housekeeping pass, ms (no Nomad request unless something is due). */
    tickMs: z.number().int().min(50).max(60_000).default(1_000),
    /** Delay before reconnecting a dropped event stream, ms. */
    reconnectMs: z.number().int().min(10).max(60_000).default(1_000),
  })
  .strict();

export type NomadConfig = z.output<typeof nomadConfigSchema>;

const ENV_NAMES: Record<string, string> = {
  address: 'NOMAD_ADDR',
  token: 'NOMAD_TOKEN',
  namespace: 'NOMAD_NAMESPACE',
  region: 'NOMAD_REGION',
  caCert: 'NOMAD_CACERT',
  clientCert: 'NOMAD_CLIENT_CERT',
  clientKey: 'NOMAD_CLIENT_KEY',
  tlsServerName: 'NOMAD_TLS_SERVER_NAME',
  skipVerify: 'NOMAD_SKIP_VERIFY',
  datacenters: 'AIRFLEET_NOMAD_DATACENTERS',
  nodePool: 'AIRFLEET_NOMAD_NODE_POOL',
  defaultImage: 'AIRFLEET_NOMAD_DEFAULT_IMAGE',
  jobTemplate: 'AIRFLEET_NOMAD_JOB_TEMPLATE',
  templateDir: 'AIRFLEET_NOMAD_TEMPLATE_DIR',
  hostVolumes: 'AIRFLEET_NOMAD_HOST_VOLUMES',
  allocPendingTimeoutSeconds: 'AIRFLEET_NOMAD_ALLOC_PENDING_TIMEOUT_SECONDS',
  parallelism: 'AIRFLEET_NOMAD_PARALLELISM',
  maxSubmitAttempts: 'AIRFLEET_NOMAD_MAX_SUBMIT_ATTEMPTS',
  submitBackoffMs: 'AIRFLEET_NOMAD_SUBMIT_BACKOFF_MS',
  purgeDelaySeconds: 'AIRFLEET_NOMAD_PURGE_DELAY_SECONDS',
  jobPrefix: 'AIRFLEET_NOMAD_JOB_PREFIX',
  checkHealthOnStartup: 'AIRFLEET_NOMAD_CHECK_HEALTH_ON_STARTUP',
  maxConnections: 'AIRFLEET_NOMAD_MAX_CONNECTIONS',
  logIntervalMs: 'AIRFLEET_NOMAD_LOG_INTERVAL_MS',
  logMaxFiles: 'AIRFLEET_NOMAD_LOG_MAX_FILES',
  logMaxFileSizeMb: 'AIRFLEET_NOMAD_LOG_MAX_FILE_SIZE_MB',
  tickMs: 'AIRFLEET_NOMAD_TICK_MS',
  reconnectMs: 'AIRFLEET_NOMAD_RECONNECT_MS',
};

const NUMBERS = [
  'allocPendingTimeoutSeconds',
  'parallelism',
  'maxSubmitAttempts',
  'submitBackoffMs',
  'purgeDelaySeconds',
  'maxConnections',
  'logIntervalMs',
  'logMaxFiles',
  'logMaxFileSizeMb',
  'tickMs',
  'reconnectMs',
] as const;

/**
 * Reads the backend's settings from the environment and validates them, listing every problem at once
 * with the variable to fix. TLS files and the template file are read here, so a wrong path stops the start.
 */
export function nomadConfigFromEnv(env: NodeJS.ProcessEnv = process.env): NomadConfig {
  const problems: string[] = [];
  const file = (name: string): string | undefined => {
    const path = env[name];
    if (!path) return undefined;
    try {
      return readFileSync(path, 'utf8');
    } catch (error) {
      problems.push(`${name}=${path}: cannot read the file (${(error as NodeJS.ErrnoException).code ?? error})`);
      return undefined;
    }
  };
  const bool = (name: string): boolean | undefined => {
    const text = env[name]?.toLowerCase();
    if (text === undefined || text === '') return undefined;
    if (['1', 'true', 'yes'].includes(text)) return true;
    if (['0', 'false', 'no'].includes(text)) return false;
    problems.push(`${name}=${env[name]} must be true or false`);
    return undefined;
  };
  // A file (the nomad CLI's variables) or the PEM itself (AIRFLEET_NOMAD_*: how ECS hands over a secret,
  // stacks/src/components/executor.ts), never both.
  const pem = (fileVar: string, valueVar: string): string | undefined => {
    if (env[fileVar] && env[valueVar]) {
      problems.push(`${fileVar} (a file) and ${valueVar} (the PEM itself) are both set: keep one`);
      return undefined;
    }
    const value = env[valueVar];
    if (value !== undefined && value !== '' && !value.includes('-----BEGIN ')) {
      problems.push(`${valueVar} does not hold PEM text (no -----BEGIN line); a path goes in ${fileVar}`);
      return undefined;
    }
    return value || file(fileVar);
  };
  const caCert = pem('NOMAD_CACERT', 'AIRFLEET_NOMAD_CACERT_PEM');
  const clientCert = pem('NOMAD_CLIENT_CERT', 'AIRFLEET_NOMAD_CLIENT_CERT_PEM');
  const clientKey = pem('NOMAD_CLIENT_KEY', 'AIRFLEET_NOMAD_CLIENT_KEY_PEM');
  const input: Record<string, unknown> = {
    address: env.NOMAD_ADDR || 'http://127.0.0.1:4646',
    token: env.NOMAD_TOKEN || undefined,
    namespace: env.NOMAD_NAMESPACE || 'default',
    region: env.NOMAD_REGION || undefined,
    caCert,
    clientCert,
    clientKey,
    tlsServerName: env.NOMAD_TLS_SERVER_NAME || undefined,
    skipVerify: bool('NOMAD_SKIP_VERIFY'),
    datacenters: env.AIRFLEET_NOMAD_DATACENTERS
      ? env.AIRFLEET_NOMAD_DATACENTERS.split(',')
          .map((d) => d.trim())
          .filter(Boolean)
      : undefined,
    nodePool: env.AIRFLEET_NOMAD_NODE_POOL || undefined,
    defaultImage: env.AIRFLEET_NOMAD_DEFAULT_IMAGE || undefined,
    jobTemplate: env.AIRFLEET_NOMAD_JOB_TEMPLATE || file('AIRFLEET_NOMAD_JOB_TEMPLATE_FILE'),
    templateDir: env.AIRFLEET_NOMAD_TEMPLATE_DIR || undefined,
    hostVolumes: env.AIRFLEET_NOMAD_HOST_VOLUMES === undefined ? undefined : hostVolumes(env, problems),
    jobPrefix: env.AIRFLEET_NOMAD_JOB_PREFIX || 'airfleet',
    checkHealthOnStartup: bool('AIRFLEET_NOMAD_CHECK_HEALTH_ON_STARTUP'),
  };
  for (const key of NUMBERS) {
    const name = ENV_NAMES[key]!;
    const text = env[name];
    if (text === undefined || text === '') continue;
    const n = Number(text);
    if (!Number.isFinite(n)) problems.push(`${name}=${text} is not a number`);
    else input[key] = n;
  }
  const tlsSet = Boolean(
    env.NOMAD_CLIENT_CERT || env.NOMAD_CACERT || env.AIRFLEET_NOMAD_CLIENT_CERT_PEM || env.AIRFLEET_NOMAD_CACERT_PEM,
  );
  if (env.NOMAD_ADDR?.startsWith('https://') === false && tlsSet) {
    problems.push(`NOMAD_ADDR=${env.NOMAD_ADDR} is not https:// but TLS material is set: use https://`);
  }
  const hasCert = Boolean(env.NOMAD_CLIENT_CERT || env.AIRFLEET_NOMAD_CLIENT_CERT_PEM);
  const hasKey = Boolean(env.NOMAD_CLIENT_KEY || env.AIRFLEET_NOMAD_CLIENT_KEY_PEM);
  if (hasCert !== hasKey) {
    problems.push(
      'a client certificate and its key go together: set NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY (files) or AIRFLEET_NOMAD_CLIENT_CERT_PEM and AIRFLEET_NOMAD_CLIENT_KEY_PEM (PEM), or neither',
    );
  }
  const result = nomadConfigSchema.safeParse(
    Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)),
  );
  if (!result.success) {
    for (const issue of result.error.issues) {
      const field = String(issue.path[0]);
      problems.push(`${ENV_NAMES[field] ?? issue.path.join('.')}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !result.success) {
    throw new ConfigError(
      `invalid nomad backend configuration:\n${[...new Set(problems)].map((p) => `  - ${p}`).join('\n')}`,
    );
  }
  return result.data;
}

/** `config=/opt/airflow/config,dags=/opt/airflow/dags`; empty mounts none. */
function hostVolumes(env: NodeJS.ProcessEnv, problems: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (env.AIRFLEET_NOMAD_HOST_VOLUMES ?? '').split(',').map((p) => p.trim())) {
    if (!part) continue;
    const [name, destination] = part.split('=');
    if (!name || !destination?.startsWith('/')) {
      problems.push(
        `AIRFLEET_NOMAD_HOST_VOLUMES: '${part}' must be <volume>=<absolute path in the task>, e.g. dags=/opt/airflow/dags`,
      );
      continue;
    }
    out[name] = destination;
  }
  return out;
}
