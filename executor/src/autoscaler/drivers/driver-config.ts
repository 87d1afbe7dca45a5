import { z } from 'zod';

/**
 * The configuration of each driver, one schema per kind: a pool's `driver` is one of these (validated with
 * the pool). A new driver adds its schema here and its factory in drivers/index.ts.
 */
export const swarmDriverSchema = z
  .object({
    kind: z.literal('swarm'),
    /** The replicated Docker service whose tasks are this pool's workers. */
    service: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'a Docker service name: 1 to 63 of A-Z a-z 0-9 _ . -'),
    /** The Docker Engine socket of a Swarm manager. @default /var/run/docker.sock (or DOCKER_HOST) */
    socketPath: z.string().min(1).max(500).optional(),
  })
  .strict();

/**
 * An EC2 Auto Scaling group of the stacks (one per queue): the executor publishes the backlog metric its
 * target tracking follows and takes it out of 0; the group does the rest. Credentials and endpoint come from
 * the SDK's usual chain (task role, AWS_REGION, AWS_ENDPOINT_URL).
 */
export const awsDriverSchema = z
  .object({
    kind: z.literal('aws'),
    autoScalingGroup: z
      .string()
      .regex(/^[\w.:/-]{1,255}$/, 'an Auto Scaling group name (airfleet-<env>-workers-<queue>)'),
    /** The `environment` dimension of the metric (the stacks' environment name). */
    environment: z.string().regex(/^[a-z0-9-]{1,40}$/, 'the environment name of the stacks: a-z, 0-9 and -'),
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'an AWS region such as eu-west-1')
      .optional(),
  })
  .strict();

const nomadFile = (what: string) =>
  z
    .string()
    .regex(/^\/.{1,499}$/, `an absolute path to the ${what} (PEM), read at start-up`)
    .optional();

/**
 * A Nomad service job whose task group's count is the pool's size (POST /v1/job/:id/scale). The connection is
 * the Nomad backend's (NOMAD_ADDR, NOMAD_TOKEN, NOMAD_CACERT... of the executor, docs/nomad-backend.md); each
 * field given here overrides its variable for this pool. The token is never in the pool configuration: it is
 * NOMAD_TOKEN or the file `tokenFile` names.
 */
export const nomadDriverSchema = z
  .object({
    kind: z.literal('nomad'),
    /** The job's ID (`job "<id>"` in HCL). */
    job: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'a Nomad job ID: 1 to 128 of A-Z a-z 0-9 _ . -, no spaces'),
    /** The task group whose count is scaled (`group "<name>"`). */
    group: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'a Nomad task group name: 1 to 128 of A-Z a-z 0-9 _ . -'),
    /** @default NOMAD_NAMESPACE, else `default` */
    namespace: z
      .string()
      .regex(/^[a-zA-Z0-9-]{1,128}$/, 'a Nomad namespace: letters, digits and -')
      .optional(),
    /** @default NOMAD_REGION */
    region: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'a Nomad region name')
      .optional(),
    /** @default NOMAD_ADDR, else http://127.0.0.1:4646 */
    address: z
      .string()
      .regex(/^(https?:\/\/[^/\s]+\/?|unix:\/\/\/.+)$/, 'http(s)://host:port or unix:///path of a Nomad agent')
      .optional(),
    caCertFile: nomadFile("CA certificate that signed the Nomad agents' certificates"),
    clientCertFile: nomadFile('client certificate (mutual TLS; with clientKeyFile)'),
    clientKeyFile: nomadFile('client key (mutual TLS; with clientCertFile)'),
    tlsServerName: z.string().min(1).max(253).optional(),
    skipVerify: z.boolean().optional(),
    /** A file holding the ACL token's SecretID (needs read-job and scale-job on the namespace). @default NOMAD_TOKEN */
    tokenFile: z
      .string()
      .regex(/^\/.{1,499}$/, 'an absolute path to a file holding the ACL token')
      .optional(),
    /** Refused with a message: a token belongs in a file or NOMAD_TOKEN, never in the pool configuration. */
    token: z
      .never({
        error: 'never put the Nomad token in the pool configuration: use tokenFile (a file holding it) or NOMAD_TOKEN',
      })
      .optional(),
    /** How long the allocations of removed workers may take to stop after the count is lowered, seconds. */
    stopTimeoutSeconds: z.number().int().min(1).max(3_600).default(60),
  })
  .strict()
  .superRefine((d, ctx) => {
    if (Boolean(d.clientCertFile) !== Boolean(d.clientKeyFile)) {
      ctx.addIssue({
        code: 'custom',
        path: [d.clientCertFile ? 'clientKeyFile' : 'clientCertFile'],
        message: 'clientCertFile and clientKeyFile go together (mutual TLS): give both or neither',
      });
    }
    if (d.address?.startsWith('http://') && (d.caCertFile || d.clientCertFile)) {
      ctx.addIssue({
        code: 'custom',
        path: ['address'],
        message: `${d.address} is not https:// but TLS files are given: use https://`,
      });
    }
  });

export const DRIVER_SCHEMAS = [swarmDriverSchema, awsDriverSchema, nomadDriverSchema] as const;

export type SwarmDriverConfig = z.output<typeof swarmDriverSchema>;
export type AwsDriverConfig = z.output<typeof awsDriverSchema>;
export type NomadDriverConfig = z.output<typeof nomadDriverSchema>;
export type DriverConfig = z.output<(typeof DRIVER_SCHEMAS)[number]>;
