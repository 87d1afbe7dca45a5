import { z } from 'zod';

/**
 * The shape of one environment (dev, staging, prod). Every environment file is checked against this schema
 * once, at synth time, before a single construct is created; `validate.ts` turns the issues into one error
 * that lists all of them. Objects are strict so a misspelt key is an error instead of a silently ignored
 * setting. Cross-field rules sit on the smallest object that holds both fields, and run as long as that
 * object parsed (`whenValid`), so a type error in one section does not hide a rule broken in another.
 */

// ---------------------------------------------------------------------------------------------------------
// Building blocks

const NAME = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/;
const name = (what: string) =>
  z.string().regex(NAME, `${what} must be 2-32 characters of a-z, 0-9 and '-', starting with a letter`);

const awsRegion = z.string().regex(/^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$/, 'must be an AWS region such as eu-west-1');

/** One of the fixed retention periods CloudWatch Logs accepts. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;
const logRetentionDays = z
  .number()
  .int()
  .refine((d) => (LOG_RETENTION_DAYS as readonly number[]).includes(d), {
    message: `must be one of the periods CloudWatch Logs accepts: ${LOG_RETENTION_DAYS.join(', ')}`,
  });

const instanceType = z.string().regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'must be an EC2 instance type such as m7i.large');

/** A CIDR that is not "everyone": 0.0.0.0/0 ingress is what the open-ingress guard forbids anyway. */
const privateCidr = z
  .cidrv4('must be an IPv4 CIDR such as 10.20.0.0/16')
  .refine((c) => !c.endsWith('/0'), { message: 'must not be a /0: ingress from everywhere is not allowed' });

const machineImage = z.union(
  [
    z.strictObject({
      /** SSM parameter that holds the AMI id, e.g. the public AL2023 parameter. Resolved at plan time. */
      ssmParameter: z.string().regex(/^\/[A-Za-z0-9_.\-/]+$/, 'must be an SSM parameter path starting with /'),
    }),
    z.strictObject({ amiId: z.string().regex(/^ami-[0-9a-f]{8,17}$/, 'must be an AMI id such as ami-0abc1234') }),
  ],
  { error: 'must be { ssmParameter: "/path" } or { amiId: "ami-…" }' },
);

/** Lets a refinement run although other parts of the object failed, as long as `paths` parsed. */
function whenValid(...paths: string[]) {
  return {
    when(payload: { issues: readonly { path?: readonly PropertyKey[] }[] }): boolean {
      return !payload.issues.some((issue) => {
        const head = issue.path?.[0];
        return paths.length === 0 || head === undefined || paths.includes(String(head));
      });
    },
  };
}

function duplicates(values: readonly string[]): string[] {
  return [...new Set(values.filter((v, i) => values.indexOf(v) !== i))];
}

// ---------------------------------------------------------------------------------------------------------
// Sections

const stateSchema = z.discriminatedUnion(
  'backend',
  [
    z.strictObject({
      /** State on the deployer's disk under .airfleet/state: for throwaway dev accounts only. */
      backend: z.literal('local'),
    }),
    z.strictObject({
      backend: z.literal('s3'),
      /** Bucket created out of band with versioning and default encryption on (see README). */
      bucket: z
        .string()
        .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name (3-63 of a-z, 0-9, ".", "-")'),
      region: awsRegion,
      /** @default 'airfleet' */
      keyPrefix: z
        .string()
        .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/, 'must be a relative key prefix such as airfleet/prod')
        .default('airfleet'),
      /** KMS key for the state objects. @default the bucket's default encryption */
      kmsKeyId: z.string().min(1).optional(),
    }),
  ],
  { error: 'backend must be "local" or "s3"' },
);

export const INTERFACE_ENDPOINTS = [
  'ecr.api',
  'ecr.dkr',
  'logs',
  'secretsmanager',
  'ssm',
  'sts',
  'ecs',
  'ecs-agent',
  'ecs-telemetry',
  'monitoring',
  'autoscaling',
  'batch',
] as const;

const networkSchema = z.strictObject({
  cidr: privateCidr.refine(
    (c) => {
      const prefix = Number(c.split('/')[1]);
      return prefix >= 16 && prefix <= 20;
    },
    { message: 'must have a prefix between /16 and /20 so each private subnet gets at least a /24' },
  ),
  availabilityZones: z
    .array(z.string().regex(/^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$/, 'must be an availability zone such as eu-west-1a'))
    .min(2, 'needs at least 2 availability zones (RDS subnet groups and Multi-AZ require two)')
    .max(6, 'supports at most 6 availability zones'),
  /** NAT for image pulls and package installs: one per AZ survives an AZ outage, one in total is cheaper. */
  natGateways: z.enum(['none', 'single', 'per-az']),
  /**
   * Interface endpoints, each one saving NAT traffic (and NAT data-processing charges) for its service.
   * The S3 gateway endpoint is always created: it is free and carries ECR image layers.
   * @default ecr.api, ecr.dkr, logs, secretsmanager, ssm, sts
   */
  interfaceEndpoints: z
    .array(z.enum(INTERFACE_ENDPOINTS))
    .default(['ecr.api', 'ecr.dkr', 'logs', 'secretsmanager', 'ssm', 'sts']),
});

const registrySchema = z.strictObject({
  /** Repository names are `<namespace>/<image>`. @default `airfleet-<environment>` */
  namespace: z
    .string()
    .regex(/^[a-z0-9]+([._-][a-z0-9]+)*$/, 'must be a lowercase ECR namespace such as airfleet-dev')
    .optional(),
  /** Tagged images kept per repository; older ones expire. @default 50 */
  keepImages: z.number().int().min(1).max(10_000).default(50),
  /** Days an untagged image (a failed push, a replaced manifest) survives. @default 7 */
  untaggedExpiryDays: z.number().int().min(1).max(365).default(7),
});

const databaseSchema = z
  .strictObject({
    /** PostgreSQL major or major.minor, e.g. "16" or "16.4"; the parameter group family follows the major. */
    engineVersion: z.string().regex(/^1[4-7](\.\d{1,2})?$/, 'must be a PostgreSQL version from 14 to 17, e.g. "16.4"'),
    instanceClass: z.string().regex(/^db\.[a-z0-9]+\.[a-z0-9]+$/, 'must be an RDS instance class such as db.t4g.small'),
    allocatedStorageGb: z.number().int().min(20).max(65_536),
    /** Storage autoscaling ceiling. @default no autoscaling */
    maxAllocatedStorageGb: z.number().int().min(20).max(65_536).optional(),
    multiAz: z.boolean(),
    backupRetentionDays: z.number().int().min(0).max(35),
    deletionProtection: z.boolean(),
    /** @default 'airfleet' */
    databaseName: z
      .string()
      .regex(/^[a-z][a-z0-9_]{0,62}$/, 'must be 1-63 of a-z, 0-9 and "_", starting with a letter')
      .default('airfleet'),
    /** @default 'airfleet_admin' */
    masterUsername: z
      .string()
      .regex(/^[a-z][a-z0-9_]{0,15}$/, 'must be 1-16 of a-z, 0-9 and "_", starting with a letter')
      .refine((u) => !['postgres', 'admin', 'rdsadmin', 'public'].includes(u), {
        message: 'must not be a name RDS reserves (postgres, admin, rdsadmin, public)',
      })
      .default('airfleet_admin'),
    /** @default false */
    performanceInsights: z.boolean().default(false),
  })
  .superRefine((db, ctx) => {
    if (db.maxAllocatedStorageGb !== undefined && db.maxAllocatedStorageGb < db.allocatedStorageGb) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxAllocatedStorageGb'],
        input: db.maxAllocatedStorageGb,
        message: `must be at least allocatedStorageGb (${db.allocatedStorageGb}) or left out`,
      });
    }
  });

export const COMPUTE_KINDS = ['ec2', 'spot', 'fargate', 'fargate-spot'] as const;

const secretName = z.string().regex(/^[A-Za-z0-9/_+=.@-]{1,512}$/, 'must be a Secrets Manager secret name');

const secretReferenceSchema = z.strictObject({
  /** Environment variable the secret is exposed as. */
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,254}$/, 'must be an environment variable name'),
  /** Secrets Manager secret name (created outside Terraform). */
  secretName,
  /** One key of a JSON secret. @default the whole secret string */
  jsonKey: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/)
    .optional(),
});

const computeEnvironmentSchema = z
  .strictObject({
    name: name('compute environment name'),
    kind: z.enum(COMPUTE_KINDS),
    maxVcpus: z.number().int().min(1).max(100_000),
    /** Kept warm; EC2 kinds only. @default 0 */
    minVcpus: z.number().int().min(0).max(100_000).default(0),
    /** EC2 kinds only. @default ['optimal'] (Batch picks from the C, M and R families) */
    instanceTypes: z
      .array(z.string().regex(/^(optimal|[a-z][a-z0-9-]*(\.[a-z0-9]+)?)$/))
      .min(1)
      .optional(),
    /** Spot only: the highest price paid, as a percentage of On-Demand. @default 100 */
    spotBidPercentage: z.number().int().min(1).max(100).optional(),
  })
  .superRefine((ce, ctx) => {
    if (ce.minVcpus > ce.maxVcpus) {
      ctx.addIssue({
        code: 'custom',
        path: ['minVcpus'],
        input: ce.minVcpus,
        message: `must be at most maxVcpus (${ce.maxVcpus})`,
      });
    }
    const fargate = ce.kind === 'fargate' || ce.kind === 'fargate-spot';
    if (fargate && ce.instanceTypes !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['instanceTypes'],
        input: ce.instanceTypes,
        message: `is only allowed for kind ec2 or spot (this one is ${ce.kind})`,
      });
    }
    if (fargate && ce.minVcpus !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['minVcpus'],
        input: ce.minVcpus,
        message: `must be 0 for kind ${ce.kind}: Fargate keeps nothing warm`,
      });
    }
    if (ce.kind !== 'spot' && ce.spotBidPercentage !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['spotBidPercentage'],
        input: ce.spotBidPercentage,
        message: `is only allowed for kind spot (this one is ${ce.kind})`,
      });
    }
  });

const jobQueueSchema = z.strictObject({
  name: name('job queue name'),
  /** Higher runs first when queues share a compute environment. */
  priority: z.number().int().min(0).max(1000),
  /** Compute environment names, tried in this order (at most 3, all EC2/Spot or all Fargate). */
  computeEnvironments: z.array(name('compute environment name')).min(1).max(3),
  /**
   * A job waiting in RUNNABLE this long for capacity that cannot come (too big for the compute
   * environment, no instance capacity) is cancelled, so the executor sees a failure instead of a hang.
   * @default 1800
   */
  runnableTimeoutSeconds: z.number().int().min(600).max(86_400).default(1800),
});

const batchSchema = z
  .strictObject({
    computeEnvironments: z.array(computeEnvironmentSchema).min(1),
    jobQueues: z.array(jobQueueSchema).min(1),
    jobDefinition: z.strictObject({
      vcpus: z.number().min(0.25).max(192),
      memoryMiB: z.number().int().min(512).max(1_048_576),
      /** Whole-attempt limit; Batch kills the attempt after it. */
      timeoutSeconds: z.number().int().min(60).max(1_209_600),
      /**
       * Environment variables the task gets from Secrets Manager (Airflow connections, API keys), injected by
       * the container agent at start, never stored in the job definition. @default none
       */
      secrets: z.array(secretReferenceSchema).default([]),
    }),
    /** @default 30 */
    logRetentionDays: logRetentionDays.default(30),
  })
  .superRefine((batch, ctx) => {
    const ceNames = batch.computeEnvironments.map((ce) => ce.name);
    for (const dup of duplicates(ceNames)) {
      ctx.addIssue({ code: 'custom', path: ['computeEnvironments'], message: `name "${dup}" is used twice` });
    }
    for (const dup of duplicates(batch.jobQueues.map((q) => q.name))) {
      ctx.addIssue({ code: 'custom', path: ['jobQueues'], message: `name "${dup}" is used twice` });
    }
    batch.jobQueues.forEach((queue, qi) => {
      queue.computeEnvironments.forEach((ce, ci) => {
        if (!ceNames.includes(ce)) {
          ctx.addIssue({
            code: 'custom',
            path: ['jobQueues', qi, 'computeEnvironments', ci],
            input: ce,
            message: `names no compute environment; defined ones are: ${ceNames.join(', ')}`,
          });
        }
      });
    });
  });

const nomadClientPoolSchema = z
  .strictObject({
    name: name('client pool name'),
    /** Nomad node pool the clients join; the executor's jobs target it. */
    nodePool: name('node pool'),
    /** Airflow queue whose tasks run here; written to the client's meta as `queue`. */
    queue: name('queue'),
    instanceType,
    minSize: z.number().int().min(0).max(1000),
    maxSize: z.number().int().min(1).max(1000),
    /** Root volume, encrypted. @default 50 */
    volumeSizeGb: z.number().int().min(20).max(16_384).default(50),
  })
  .superRefine((pool, ctx) => {
    if (pool.minSize > pool.maxSize) {
      ctx.addIssue({
        code: 'custom',
        path: ['minSize'],
        input: pool.minSize,
        message: `must be at most maxSize (${pool.maxSize})`,
      });
    }
  });

const nomadSchema = z
  .strictObject({
    /** HTTPS address of the Nomad servers' API, for the Nomad provider (the nomad stack). */
    address: z.url({ protocol: /^https$/, error: 'must be an https:// URL: the Nomad API is only spoken over TLS' }),
    /** @default 'global' */
    region: z
      .string()
      .regex(/^[a-z0-9-]+$/)
      .default('global'),
    datacenter: z.string().regex(/^[a-z0-9-]+$/, 'must be a Nomad datacenter name of a-z, 0-9 and "-"'),
    /** Namespace the executor submits task jobs to. */
    namespace: name('namespace'),
    /** Nomad agent version installed at boot when the image has none. */
    version: z.string().regex(/^\d+\.\d+\.\d+$/, 'must be an exact Nomad version such as 1.10.5'),
    /** `server_join.retry_join` entries, e.g. "provider=aws tag_key=nomad-server tag_value=prod". */
    serverJoin: z.array(z.string().min(1)).min(1),
    /**
     * SSM SecureString parameters `<prefix>/ca.pem`, `<prefix>/client.pem` and `<prefix>/client-key.pem`,
     * read by each client at boot; the material never passes through Terraform.
     */
    tlsParameterPrefix: z
      .string()
      .regex(/^(\/[A-Za-z0-9_.-]+)+$/, 'must be an SSM parameter path such as /airfleet/prod/nomad-tls'),
    /**
     * Secrets Manager secret (name) holding a Nomad ACL token minted from the executor role; read by the
     * executor when it runs outside Nomad (on Nomad it uses its workload identity instead).
     */
    executorTokenSecretName: secretName,
    clientPools: z.array(nomadClientPoolSchema).min(1),
  })
  .superRefine((nomad, ctx) => {
    for (const dup of duplicates(nomad.clientPools.map((p) => p.name))) {
      ctx.addIssue({ code: 'custom', path: ['clientPools'], message: `name "${dup}" is used twice` });
    }
  });

const workerPoolSchema = z
  .strictObject({
    /** Airflow queue the pool's workers pull from. */
    queue: name('queue'),
    /**
     * Instance types of the queue's one Auto Scaling group (mixed instances policy overrides): On-Demand
     * uses them in this order, Spot by price and capacity.
     */
    instanceTypes: z.array(instanceType).min(1).max(10),
    minSize: z.number().int().min(0).max(1000),
    maxSize: z.number().int().min(1).max(1000),
    /** Task slots per worker (`poolSlots` of the tasks it runs add up to at most this). */
    concurrency: z.number().int().min(1).max(256),
    /** Target of the backlog-per-instance metric: queued + running slots per worker. */
    targetBacklogPerInstance: z.number().positive().max(10_000),
    /** How long a worker being scaled in may take to drain (SIGINT, then SIGTERM). @default 900 */
    drainTimeoutSeconds: z.number().int().min(30).max(7200).default(900),
    /** Root volume, encrypted. @default 50 */
    volumeSizeGb: z.number().int().min(20).max(16_384).default(50),
    /** Spot capacity. @default On-Demand only */
    spot: z
      .strictObject({
        /** Instances kept On-Demand before any Spot is used. @default 0 */
        onDemandBaseCapacity: z.number().int().min(0).max(1000).default(0),
        /** Share of On-Demand above the base. @default 0 */
        onDemandPercentageAboveBase: z.number().int().min(0).max(100).default(0),
        /** Launch a replacement when EC2 signals a Spot interruption risk. @default true */
        capacityRebalance: z.boolean().default(true),
      })
      .optional(),
  })
  .superRefine((pool, ctx) => {
    if (pool.minSize > pool.maxSize) {
      ctx.addIssue({
        code: 'custom',
        path: ['minSize'],
        input: pool.minSize,
        message: `must be at most maxSize (${pool.maxSize})`,
      });
    }
    for (const dup of duplicates(pool.instanceTypes)) {
      ctx.addIssue({ code: 'custom', path: ['instanceTypes'], message: `"${dup}" is listed twice` });
    }
  });

export const FARGATE_CPU_UNITS = [256, 512, 1024, 2048, 4096, 8192, 16384] as const;

const executorSchema = z.discriminatedUnion(
  'runtime',
  [
    z.strictObject({
      /** The executor runs as a Nomad service job (the nomad stack). */
      runtime: z.literal('nomad'),
      /** @default 2 */
      count: z.number().int().min(1).max(16).default(2),
      /** MHz. @default 1000 */
      cpu: z.number().int().min(100).max(64_000).default(1000),
      /** @default 512 */
      memoryMb: z.number().int().min(128).max(262_144).default(512),
      /** How pull workers reach the executor (a load balancer or DNS name in front of the Nomad service). */
      url: z.url({ protocol: /^https?$/, error: 'must be an http(s):// URL' }),
      /**
       * The node pool the executor job runs on: a client pool of its own, whose instance role alone carries
       * the executor's rights, and on which the task namespace may not place Airflow tasks.
       * @default the first client pool's
       */
      nodePool: name('node pool').optional(),
    }),
    z.strictObject({
      /** The executor runs on ECS Fargate behind an internal Application Load Balancer (executor stack). */
      runtime: z.literal('ecs'),
      /** @default 2 */
      desiredCount: z.number().int().min(1).max(16).default(2),
      /** Fargate CPU units. @default 512 */
      cpu: z
        .number()
        .int()
        .refine((c) => (FARGATE_CPU_UNITS as readonly number[]).includes(c), {
          message: `must be one of the Fargate CPU sizes ${FARGATE_CPU_UNITS.join(', ')}`,
        })
        .default(512),
      /** @default 1024 */
      memoryMiB: z.number().int().min(512).max(122_880).default(1024),
      /** The service's listen port. @default 8470 (the service's own default) */
      port: z.number().int().min(1024).max(65_535).default(8470),
      /** @default '/healthz' */
      healthCheckPath: z
        .string()
        .regex(/^\/[A-Za-z0-9/_.-]*$/, 'must be an absolute URL path')
        .default('/healthz'),
      /** Who may call the load balancer (Airflow schedulers, workers). @default the VPC CIDR */
      allowedCidrs: z.array(privateCidr).min(1).optional(),
      /** ACM certificate for an HTTPS listener. @default plain HTTP inside the VPC */
      certificateArn: z
        .string()
        .regex(/^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate\/[A-Za-z0-9-]+$/, 'must be an ACM certificate ARN')
        .optional(),
    }),
  ],
  { error: 'runtime must be "nomad" or "ecs"' },
);

// ---------------------------------------------------------------------------------------------------------
// The environment

export const environmentSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z][a-z0-9]{1,11}$/, 'must be 2-12 of a-z and 0-9, starting with a letter'),
    /**
     * Production environments must keep their data: Multi-AZ, backups of at least 7 days, deletion
     * protection and remote state. @default false
     */
    production: z.boolean().default(false),
    aws: z.strictObject({
      region: awsRegion,
      /**
       * The only account the provider (and the bootstrap) may touch (`allowed_account_ids`): an apply with
       * another account's credentials fails before any change. Required in every environment.
       */
      accountId: z.string().regex(/^\d{12}$/, 'must be a 12-digit AWS account id'),
    }),
    state: stateSchema,
    /** Added to every AWS resource (provider default_tags) next to Project, Environment and Stack. @default {} */
    tags: z.record(z.string().regex(/^[\w.:/=+@ -]{1,128}$/), z.string().max(256)).default({}),
    /** Image tag deployed everywhere (executor, worker, task runner). Tags are immutable: use a release. */
    imageTag: z
      .string()
      .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'must be a Docker tag')
      .refine((t) => t !== 'latest', { message: 'must not be "latest": repositories use immutable tags' }),
    /** AMI for Nomad clients and pull workers (Amazon Linux 2023 or a derivative with dnf). */
    machineImage,
    /** @default 30 */
    logRetentionDays: logRetentionDays.default(30),
    /**
     * `flowLogs`: VPC flow logs (all traffic) to a CloudWatch log group; `encryptLogGroups`: every log
     * group of the environment encrypted with a customer-managed KMS key (in the network stack).
     * @default both on where `production` is true, off elsewhere (see `loggingOf`)
     */
    logging: z.strictObject({ flowLogs: z.boolean().optional(), encryptLogGroups: z.boolean().optional() }).default({}),
    network: networkSchema,
    registry: registrySchema.default({ keepImages: 50, untaggedExpiryDays: 7 }),
    database: databaseSchema,
    batch: batchSchema,
    nomad: nomadSchema,
    workerPools: z.array(workerPoolSchema).default([]),
    /**
     * Secrets Manager secret (name) holding the executor's enrollment token (scope `enroll`): the data stack
     * creates it empty, the executor fills it on its first start, pull workers read it before every start.
     */
    enrollTokenSecretName: secretName,
    executor: executorSchema,
  })
  .superRefine(
    (env, ctx) => {
      for (const [i, az] of env.network.availabilityZones.entries()) {
        if (!az.startsWith(env.aws.region)) {
          ctx.addIssue({
            code: 'custom',
            path: ['network', 'availabilityZones', i],
            input: az,
            message: `must be in the environment's region ${env.aws.region}`,
          });
        }
      }
      for (const dup of duplicates(env.network.availabilityZones)) {
        ctx.addIssue({ code: 'custom', path: ['network', 'availabilityZones'], message: `"${dup}" is listed twice` });
      }
    },
    whenValid('aws', 'network'),
  )
  .superRefine((env, ctx) => {
    const queues = env.workerPools.map((p) => p.queue);
    for (const dup of duplicates(queues)) {
      ctx.addIssue({
        code: 'custom',
        path: ['workerPools'],
        message: `queue "${dup}" has two pools; list its instance types in one pool instead`,
      });
    }
  }, whenValid('workerPools'))
  .superRefine(
    (env, ctx) => {
      if (!env.production) return;
      const need = (ok: boolean, path: (string | number)[], input: unknown, message: string) => {
        if (!ok) ctx.addIssue({ code: 'custom', path, input, message });
      };
      need(env.database.multiAz, ['database', 'multiAz'], env.database.multiAz, 'must be true in production');
      need(
        env.database.deletionProtection,
        ['database', 'deletionProtection'],
        env.database.deletionProtection,
        'must be true in production',
      );
      need(
        env.database.backupRetentionDays >= 7,
        ['database', 'backupRetentionDays'],
        env.database.backupRetentionDays,
        'must be at least 7 in production',
      );
      need(
        env.state.backend === 's3',
        ['state', 'backend'],
        env.state.backend,
        'must be "s3" in production: local state is lost with the laptop',
      );
    },
    whenValid('production', 'database', 'state'),
  );

/** The logging options in effect: what the environment says, else on in production and off elsewhere. */
export function loggingOf(env: {
  production: boolean;
  logging: { flowLogs?: boolean | undefined; encryptLogGroups?: boolean | undefined };
}): { flowLogs: boolean; encryptLogGroups: boolean } {
  return {
    flowLogs: env.logging.flowLogs ?? env.production,
    encryptLogGroups: env.logging.encryptLogGroups ?? env.production,
  };
}

/** What an environment file writes (defaults may be left out). */
export type EnvironmentInput = z.input<typeof environmentSchema>;
/** A validated environment with every default filled in. */
export type EnvironmentConfig = z.output<typeof environmentSchema>;
export type ComputeEnvironmentConfig = EnvironmentConfig['batch']['computeEnvironments'][number];
export type JobQueueConfig = EnvironmentConfig['batch']['jobQueues'][number];
export type NomadClientPoolConfig = EnvironmentConfig['nomad']['clientPools'][number];
export type WorkerPoolConfig = EnvironmentConfig['workerPools'][number];
export type ExecutorConfig = EnvironmentConfig['executor'];
export type SecretReference = z.output<typeof secretReferenceSchema>;
export type MachineImageConfig = EnvironmentConfig['machineImage'];
export type ComputeKind = (typeof COMPUTE_KINDS)[number];
