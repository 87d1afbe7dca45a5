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

export const DRIVER_SCHEMAS = [swarmDriverSchema] as const;

export type SwarmDriverConfig = z.output<typeof swarmDriverSchema>;
export type DriverConfig = z.output<(typeof DRIVER_SCHEMAS)[number]>;
