import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { queueName } from '../domain/workload.ts';
import { ConfigError } from '../errors.ts';
import { DRIVER_SCHEMAS } from './drivers/driver-config.ts';

/** Pool names end up in metric labels, Docker service names and log lines: short and plain. */
const poolName = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9-]{0,62}$/,
    'pool names are 1 to 63 characters of a-z, 0-9 and -, starting with a letter or digit',
  );

const seconds = (max: number) => z.number().int().min(0).max(max);

/**
 * One autoscaled pool: the queues its workers serve, the worker shape (slots per worker), bounds, and how
 * the decision is damped. Defaults in one place (docs/autoscaler.md explains each).
 */
export const poolConfigSchema = z
  .object({
    name: poolName,
    /** The queues whose backlog this pool serves; a worker of the pool serves all of them. */
    queues: z.array(queueName).min(1, 'give the pool at least one queue').max(50),
    /** The `--concurrency` of each worker: pool slots one worker runs at once. */
    slotsPerWorker: z.number().int().min(1).max(1_024),
    minWorkers: z.number().int().min(0).max(10_000).default(0),
    maxWorkers: z.number().int().min(1).max(10_000),
    /** After a scale-out, how long before the next scale-out, seconds. @default 30 */
    scaleOutCooldownSeconds: seconds(86_400).default(30),
    /** After any scale event, how long before a scale-in may start, seconds. @default 120 */
    scaleInCooldownSeconds: seconds(86_400).default(120),
    /**
     * Scale-in only once the backlog is this many slots below what the smaller size serves, so a backlog
     * hovering at a worker boundary does not add and remove a worker in turn. @default slotsPerWorker / 2, rounded up
     */
    hysteresisSlots: z.number().int().min(0).max(1_000_000).optional(),
    /** How long workers chosen for scale-in may take to drain before they are put back to work, seconds. @default 600 */
    drainTimeoutSeconds: z.number().int().min(1).max(86_400).default(600),
    /** What adds and removes workers. */
    driver: z.discriminatedUnion('kind', DRIVER_SCHEMAS),
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.maxWorkers < p.minWorkers) {
      ctx.addIssue({
        code: 'custom',
        path: ['maxWorkers'],
        message: `must be at least minWorkers (${p.minWorkers}); got ${p.maxWorkers}`,
      });
    }
    if (p.driver.kind === 'aws' && p.queues.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['queues'],
        message: `an aws pool serves exactly one queue (its group tracks that queue's BacklogPerInstance); got ${p.queues.length}`,
      });
    }
    if (p.hysteresisSlots !== undefined && p.hysteresisSlots >= p.slotsPerWorker * Math.max(1, p.maxWorkers)) {
      ctx.addIssue({
        code: 'custom',
        path: ['hysteresisSlots'],
        message: `must be below the pool's capacity (slotsPerWorker × maxWorkers = ${p.slotsPerWorker * p.maxWorkers}) or the pool never scales in`,
      });
    }
  })
  .transform((p) => ({ ...p, hysteresisSlots: p.hysteresisSlots ?? Math.ceil(p.slotsPerWorker / 2) }));

export const poolsConfigSchema = z
  .array(poolConfigSchema)
  .max(200)
  .superRefine((pools, ctx) => {
    const names = new Map<string, number>();
    const queues = new Map<string, string>();
    pools.forEach((p, i) => {
      if (names.has(p.name)) {
        ctx.addIssue({
          code: 'custom',
          path: [i, 'name'],
          message: `pool '${p.name}' is also pools[${names.get(p.name)}]: give each pool its own name`,
        });
      }
      names.set(p.name, i);
      for (const q of p.queues) {
        const other = queues.get(q);
        if (other !== undefined && other !== p.name) {
          ctx.addIssue({
            code: 'custom',
            path: [i, 'queues'],
            message: `queue '${q}' is already served by pool '${other}': two pools sizing themselves on one backlog overshoot`,
          });
        }
        queues.set(q, p.name);
      }
    });
  });

export type PoolConfig = z.output<typeof poolConfigSchema>;
export type PoolConfigInput = z.input<typeof poolConfigSchema>;

/**
 * Pools from the environment: AIRFLEET_POOLS (JSON) or AIRFLEET_POOLS_FILE (a JSON file; Docker and ECS
 * hand configuration as files). Returns the raw value: the service config validates it.
 */
export function poolsFromEnv(env: NodeJS.ProcessEnv): unknown {
  const inline = env.AIRFLEET_POOLS;
  const file = env.AIRFLEET_POOLS_FILE;
  if (inline && file) throw new ConfigError('give AIRFLEET_POOLS or AIRFLEET_POOLS_FILE, not both');
  if (!inline && !file) return undefined;
  let text: string;
  const where = inline ? 'AIRFLEET_POOLS' : `AIRFLEET_POOLS_FILE (${file})`;
  try {
    text = inline ?? readFileSync(file!, 'utf8');
  } catch (error) {
    throw new ConfigError(`${where}: cannot read the file: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${where} is not JSON: ${(error as Error).message}`);
  }
}
