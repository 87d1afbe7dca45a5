import { z } from 'zod';

/**
 * The configuration of each driver, one schema per kind: a pool's `driver` is one of these (validated with
 * the pool). A new driver adds its schema here and its factory in drivers/index.ts (the Nomad driver's place:
 * `{ kind: 'nomad', job, group }`, scaled through `/v1/job/:id/scale`).
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

export const DRIVER_SCHEMAS = [swarmDriverSchema, awsDriverSchema] as const;

export type SwarmDriverConfig = z.output<typeof swarmDriverSchema>;
export type AwsDriverConfig = z.output<typeof awsDriverSchema>;
export type DriverConfig = z.output<(typeof DRIVER_SCHEMAS)[number]>;
