import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { poolsConfigSchema, poolsFromEnv } from './autoscaler/pool-config.ts';
import { BACKENDS } from './domain/workload.ts';
import { ConfigError } from './errors.ts';

/** Every tunable of the service with its default, in one typed object (graphile-worker style). */
export const serviceConfigSchema = z
  .object({
    /** PostgreSQL URL; without one the service uses an embedded PGlite database in `dataDir`. */
    databaseUrl: z.string().url('databaseUrl must be a postgres:// URL').optional(),
    /**
     * Secrets Manager secret (ARN) with the database `username` and `password` (JSON, as RDS writes it):
     * read at start and again whenever PostgreSQL refuses a login (rotation). Host, port, database and TLS
     * come from `databaseUrl` (or the PG* variables).
     */
    databaseSecretArn: z
      .string()
      .regex(
        /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/,
        'databaseSecretArn must be a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)',
      )
      .optional(),
    /**
     * Key for workloads' write-only secrets (secretEnv): 32 bytes, base64, the same on every instance. The
     * embedded default makes one in `<dataDir>/secret.key`; with PostgreSQL and no key, secretEnv is refused.
     */
    secretKey: z.string().min(1).optional(),
    /** A file holding the secret key (base64), instead of `secretKey`. */
    secretKeyFile: z.string().min(1).optional(),
    /** Where the embedded database and the bootstrap admin token live. */
    dataDir: z.string().min(1).default(join(process.cwd(), '.airfleet')),
    host: z.string().default('127.0.0.1'),
    /**
     * HTTPS (executor/src/api/tls.ts): certificate and key files (watched and reloaded on change) or PEM
     * values; with `clientCaFile`, the worker protocol requires client certificates that CA signed.
     * @default none: plain HTTP
     */
    tls: z
      .object({
        certFile: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
        cert: z.string().min(1).optional(),
        key: z.string().min(1).optional(),
        clientCaFile: z.string().min(1).optional(),
      })
      .strict()
      .default({}),
    port: z.number().int().min(0).max(65_535).default(8_470),
    /** How often workers heartbeat, ms. */
    heartbeatIntervalMs: z.number().int().min(100).max(300_000).default(10_000),
    /** A worker silent this long is lost: its leases are taken back and its running tasks fail as `lost`. */
    heartbeatTimeoutMs: z.number().int().min(300).max(3_600_000).default(45_000),
    /** A lease the worker has not acknowledged in a heartbeat after this long is requeued, ms. */
    leaseAckTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    /** Service-side retries of failures before the task started (image pull, lost before start, ...). */
    maxInfraRetries: z.number().int().min(0).max(10).default(3),
    /**
     * Finished workloads, their logs and change-feed entries older than this are deleted (in batches, by the
     * leader), seconds. Feed clients further behind than this re-list instead. @default 30 days
     */
    retentionSeconds: z
      .number()
      .int()
      .min(60)
      .default(30 * 86_400),
    /**
     * This instance's name: a restart under the same name takes over its predecessor's attempts at once
     * rather than after `instanceTimeoutMs`. @default `<host>:<port>`
     */
    instanceName: z.string().min(1).max(200).optional(),
    /** How often an instance renews its row in `instances`, ms. */
    instanceHeartbeatMs: z.number().int().min(50).max(60_000).default(2_000),
    /**
     * An instance whose row is older than this is dead to its peers: the leader reconciles its attempts. It
     * stops claiming work itself after half of it without a renewal, ms.
     */
    instanceTimeoutMs: z.number().int().min(200).max(600_000).default(15_000),
    /** A stop (cancel, timeout) not yet confirmed by the backend is sent again after this long, seconds. */
    stopResendSeconds: z.number().int().min(1).max(3_600).default(15),
    /** How often the reaper looks for silent workers and passed deadlines, ms. */
    reaperIntervalMs: z.number().int().min(50).max(60_000).default(1_000),
    /** PostgreSQL connections. */
    poolSize: z.number().int().min(2).max(200).default(10),
    /** Longest a submission waits to be grouped with others into one insert, ms. */
    submitBatchWindowMs: z.number().min(0).max(100).default(1),
    /**
     * Backends this instance runs. Default: `pool` and `local` with the embedded database; `pool` alone with
     * PostgreSQL (`local` runs tasks on the service's own host, so it wants a single instance). Workloads
     * for a backend not listed are refused at submission.
     */
    backends: z
      .array(z.enum(BACKENDS))
      .min(1)
      .refine((list) => list.includes('pool'), 'backends must include pool (the worker protocol is always served)')
      .optional(),
    /** Where the local backend keeps run directories (output and exit codes); default `<dataDir>/local-runs`. */
    localRunDir: z.string().min(1).optional(),
    /** Most tasks the local backend runs at once. */
    localConcurrency: z.number().int().min(1).max(1_024).default(Math.max(2, availableParallelism())),
    /** After SIGTERM, how long a cancelled local task gets before SIGKILL, ms. */
    localKillGraceMs: z.number().int().min(0).max(600_000).default(10_000),
    /** Most workloads the dispatcher claims for a push backend in one statement. */
    dispatchBatchSize: z.number().int().min(1).max(10_000).default(100),
    /** Most submit calls in flight per push backend. */
    submitConcurrency: z.number().int().min(1).max(1_000).default(16),
    /**
     * Autoscaled pools of pull workers (docs/autoscaler.md): per pool its queues, slots per worker, bounds,
     * cooldowns, hysteresis and driver. The leader instance runs the autoscaler. @default none
     */
    pools: poolsConfigSchema.default([]),
    /** How often the leader's autoscaler looks at every pool, ms. */
    autoscaleIntervalMs: z.number().int().min(100).max(600_000).default(5_000),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /**
     * Origins that may show the dashboard (`/ui`) in a frame besides the service itself: Airflow's UI, for
     * the plugin's view, e.g. `https://airflow.example.com` (CSP frame-ancestors sources; a port may be `*`).
     * @default none: only the service's own pages may frame it
     */
    uiFrameAncestors: z
      .array(
        z
          .string()
          .regex(
            /^https?:\/\/(\*\.)?[A-Za-z0-9.-]+(:(\d{1,5}|\*))?$/,
            'uiFrameAncestors: each entry must be an origin such as https://airflow.example.com or http://127.0.0.1:* (no path)',
          ),
      )
      .max(20)
      .default([]),
    /**
     * Tokens given by value at start-up (e.g. from a secret store): stored hashed, like any other token.
     * Lets a deployment hand the same admin or enrollment token to clients without a bootstrap step.
     */
    bootstrapTokens: z
      .array(
        z.object({
          name: z.string(),
          token: z.string(),
          scopes: z.array(z.enum(['submit', 'read', 'admin', 'enroll'])),
        }),
      )
      .default([]),
  })
  .strict();

export type ServiceConfig = z.output<typeof serviceConfigSchema>;
export type ServiceConfigInput = z.input<typeof serviceConfigSchema>;

/** Validates config once, at the edge; every problem is listed with its field. */
export function parseServiceConfig(input: ServiceConfigInput): ServiceConfig {
  const result = serviceConfigSchema
    .superRefine((c, ctx) => {
      if (c.instanceHeartbeatMs * 3 > c.instanceTimeoutMs) {
        ctx.addIssue({
          code: 'custom',
          path: ['instanceTimeoutMs'],
          message: `must be at least 3 × instanceHeartbeatMs (${c.instanceHeartbeatMs * 3}), or one late renewal makes the instance look dead`,
        });
      }
      if (c.databaseSecretArn && !c.databaseUrl) {
        ctx.addIssue({
          code: 'custom',
          path: ['databaseSecretArn'],
          message:
            'needs the database it is for: set PGHOST (and PGPORT, PGDATABASE, PGSSLMODE) or AIRFLEET_DATABASE_URL',
        });
      }
      if (c.heartbeatIntervalMs * 2 > c.heartbeatTimeoutMs) {
        ctx.addIssue({
          code: 'custom',
          path: ['heartbeatTimeoutMs'],
          message: `must be at least 2 × heartbeatIntervalMs (${c.heartbeatIntervalMs * 2}): workers fence themselves after a timeout without a renewal`,
        });
      }
    })
    .safeParse(input);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  - ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid service configuration:\n${lines.join('\n')}`);
  }
  return result.data;
}

/** Reads AIRFLEET_* environment variables into a config input; flags given on the CLI win over these. */
export function configFromEnv(given: NodeJS.ProcessEnv = process.env): ServiceConfigInput {
  const env = withSecretFiles(given);
  const out: Record<string, unknown> = {};
  const num = (name: string, key: string) => {
    const value = env[name];
    if (value === undefined || value === '') return;
    const n = Number(value);
    if (!Number.isFinite(n)) throw new ConfigError(`${name}=${value} is not a number`);
    out[key] = n;
  };
  if (env.AIRFLEET_DATABASE_URL) out.databaseUrl = env.AIRFLEET_DATABASE_URL;
  else if (env.PGHOST) out.databaseUrl = urlFromLibpqEnv(env);
  if (env.AIRFLEET_DATABASE_SECRET_ARN) out.databaseSecretArn = env.AIRFLEET_DATABASE_SECRET_ARN;
  if (env.AIRFLEET_DATA_DIR) out.dataDir = env.AIRFLEET_DATA_DIR;
  if (env.AIRFLEET_SECRET_KEY) out.secretKey = env.AIRFLEET_SECRET_KEY;
  if (env.AIRFLEET_SECRET_KEY_FILE) out.secretKeyFile = env.AIRFLEET_SECRET_KEY_FILE;
  if (env.AIRFLEET_HOST) out.host = env.AIRFLEET_HOST;
  const tls: Record<string, string> = {};
  if (env.AIRFLEET_TLS_CERT_FILE) tls.certFile = env.AIRFLEET_TLS_CERT_FILE;
  if (env.AIRFLEET_TLS_KEY_FILE) tls.keyFile = env.AIRFLEET_TLS_KEY_FILE;
  if (env.AIRFLEET_TLS_CERT) tls.cert = env.AIRFLEET_TLS_CERT;
  if (env.AIRFLEET_TLS_KEY) tls.key = env.AIRFLEET_TLS_KEY;
  if (env.AIRFLEET_TLS_CLIENT_CA_FILE) tls.clientCaFile = env.AIRFLEET_TLS_CLIENT_CA_FILE;
  if (Object.keys(tls).length) out.tls = tls;
  num('AIRFLEET_PORT', 'port');
  num('AIRFLEET_HEARTBEAT_INTERVAL_MS', 'heartbeatIntervalMs');
  num('AIRFLEET_HEARTBEAT_TIMEOUT_MS', 'heartbeatTimeoutMs');
  num('AIRFLEET_LEASE_ACK_TIMEOUT_MS', 'leaseAckTimeoutMs');
  num('AIRFLEET_MAX_INFRA_RETRIES', 'maxInfraRetries');
  num('AIRFLEET_REAPER_INTERVAL_MS', 'reaperIntervalMs');
  num('AIRFLEET_POOL_SIZE', 'poolSize');
  num('AIRFLEET_RETENTION_SECONDS', 'retentionSeconds');
  if (env.AIRFLEET_INSTANCE_NAME) out.instanceName = env.AIRFLEET_INSTANCE_NAME;
  num('AIRFLEET_INSTANCE_HEARTBEAT_MS', 'instanceHeartbeatMs');
  num('AIRFLEET_INSTANCE_TIMEOUT_MS', 'instanceTimeoutMs');
  if (env.AIRFLEET_LOG_LEVEL) out.logLevel = env.AIRFLEET_LOG_LEVEL;
  if (env.AIRFLEET_UI_FRAME_ANCESTORS)
    out.uiFrameAncestors = env.AIRFLEET_UI_FRAME_ANCESTORS.split(/[\s,]+/).filter(Boolean);
  if (env.AIRFLEET_BACKENDS)
    out.backends = env.AIRFLEET_BACKENDS.split(',')
      .map((b) => b.trim())
      .filter(Boolean);
  if (env.AIRFLEET_LOCAL_RUN_DIR) out.localRunDir = env.AIRFLEET_LOCAL_RUN_DIR;
  num('AIRFLEET_LOCAL_CONCURRENCY', 'localConcurrency');
  num('AIRFLEET_LOCAL_KILL_GRACE_MS', 'localKillGraceMs');
  num('AIRFLEET_DISPATCH_BATCH_SIZE', 'dispatchBatchSize');
  num('AIRFLEET_SUBMIT_CONCURRENCY', 'submitConcurrency');
  num('AIRFLEET_AUTOSCALE_INTERVAL_MS', 'autoscaleIntervalMs');
  const pools = poolsFromEnv(env);
  if (pools !== undefined) out.pools = pools;
  const tokens: Array<{ name: string; token: string; scopes: string[] }> = [];
  if (env.AIRFLEET_ADMIN_TOKEN) tokens.push({ name: 'env-admin', token: env.AIRFLEET_ADMIN_TOKEN, scopes: ['admin'] });
  if (env.AIRFLEET_ENROLL_TOKEN)
    tokens.push({ name: 'env-enroll', token: env.AIRFLEET_ENROLL_TOKEN, scopes: ['enroll'] });
  if (tokens.length) out.bootstrapTokens = tokens;
  return out as ServiceConfigInput;
}

/** Variables that hold secrets, which may also be given as a file (`<NAME>_FILE`, e.g. a Docker secret). */
const SECRET_VARIABLES = ['AIRFLEET_DATABASE_URL', 'AIRFLEET_ADMIN_TOKEN', 'AIRFLEET_ENROLL_TOKEN', 'PGPASSWORD'];

/**
 * The environment with each `<NAME>_FILE` of a secret variable read into `<NAME>`, so that a secret can come
 * from a Docker secret (/run/secrets/...) and stay out of the environment that `docker inspect` shows.
 */
function withSecretFiles(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const name of SECRET_VARIABLES) {
    const file = env[`${name}_FILE`];
    if (!file) continue;
    if (env[name]) throw new ConfigError(`give ${name} or ${name}_FILE, not both`);
    try {
      out[name] = readFileSync(file, 'utf8').trim();
    } catch (error) {
      throw new ConfigError(`${name}_FILE: cannot read ${file}: ${(error as Error).message}`);
    }
  }
  return out;
}

/**
 * PostgreSQL from the libpq variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE,
 * PGSSLROOTCERT), the way the stacks hand the database to the service (the credentials from a secret).
 * PGSSLROOTCERT names the CA bundle that verifies the server (`sslmode=verify-full`); the image ships the
 * RDS bundle at /opt/airfleet/rds-ca-bundle.pem (images/executor).
 */
export function urlFromLibpqEnv(env: NodeJS.ProcessEnv): string {
  const url = new URL('postgres://localhost');
  url.hostname = env.PGHOST ?? 'localhost';
  if (env.PGPORT) url.port = env.PGPORT;
  url.pathname = `/${encodeURIComponent(env.PGDATABASE ?? env.PGUSER ?? 'postgres')}`;
  if (env.PGUSER) url.username = encodeURIComponent(env.PGUSER);
  if (env.PGPASSWORD) url.password = encodeURIComponent(env.PGPASSWORD);
  if (env.PGSSLMODE) url.searchParams.set('sslmode', env.PGSSLMODE);
  if (env.PGSSLROOTCERT) url.searchParams.set('sslrootcert', env.PGSSLROOTCERT);
  return url.toString();
}
