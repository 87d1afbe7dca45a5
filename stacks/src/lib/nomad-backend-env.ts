import { registryHost, repositoryName } from '../components/registry.ts';
import type { EnvironmentConfig } from '../config/schema.ts';

/**
 * The node pools Airflow tasks may use: every client pool's but the executor's own, where the executor runs
 * on Nomad with a pool of its own (so tasks never land beside it and its instance role). The first is the
 * task namespace's default and the nomad backend's (AIRFLEET_NOMAD_NODE_POOL).
 */
export function taskNodePools(env: EnvironmentConfig): string[] {
  const executorPool = env.executor.runtime === 'nomad' ? env.executor.nodePool : undefined;
  return [...new Set(env.nomad.clientPools.map((p) => p.nodePool).filter((p) => p !== executorPool))];
}

/**
 * Where a client pool's `config` and `dags` host volumes are mounted in a task: where the task-runner image
 * reads them (images/task-runner/Dockerfile). The volumes' names are the ones every client defines
 * (stacks/src/lib/nomad-client-config.ts).
 */
export const TASK_VOLUME_MOUNTS = { config: '/opt/airflow/config', dags: '/opt/airflow/dags' } as const;

/**
 * The nomad backend's job prefix (jobs `<prefix>-<workload id>-<attempt>`, their secret variables
 * `nomad/jobs/<prefix>-…`): the executor's ACL policy grants the variables under it (components/nomad.ts).
 */
export const NOMAD_JOB_PREFIX = 'airfleet';

/** `<account>.dkr.ecr.<region>.amazonaws.com/<namespace>/<image>:<tag>`: what ECR names the repository's image. */
export function registryImage(env: EnvironmentConfig, image: Parameters<typeof repositoryName>[1]): string {
  return `${registryHost(env)}/${repositoryName(env, image)}:${env.imageTag}`;
}

/**
 * What the executor's nomad backend reads besides Nomad's own variables (executor/src/backends/nomad/
 * nomad-config.ts, docs/nomad-backend.md), wherever the executor runs: jobs go to the environment's
 * datacenter and the task pools' default node pool (the namespace's default is a Nomad Enterprise feature, so
 * the job names it), tasks naming no image run the task-runner image of this release (the clients' role may
 * pull it, through the Docker driver's ECR credential helper: stacks/src/components/nomad-clients.ts), jobs
 * carry the prefix the executor's ACL policy grants secret variables under, and the clients' host volumes are mounted where Airflow reads them.
 */
export function nomadBackendEnv(env: EnvironmentConfig): Record<string, string> {
  const pools = taskNodePools(env);
  return {
    AIRFLEET_NOMAD_DATACENTERS: env.nomad.datacenter,
    // A configuration whose only client pool is the executor's has no task pool: the nomad stack refuses it.
    AIRFLEET_NOMAD_NODE_POOL: pools[0] ?? '',
    AIRFLEET_NOMAD_DEFAULT_IMAGE: registryImage(env, 'task-runner'),
    AIRFLEET_NOMAD_JOB_PREFIX: NOMAD_JOB_PREFIX,
    AIRFLEET_NOMAD_HOST_VOLUMES: Object.entries(TASK_VOLUME_MOUNTS)
      .map(([volume, destination]) => `${volume}=${destination}`)
      .join(','),
  };
}

/**
 * The Nomad job's HCL variable carrying one of those settings: `AIRFLEET_NOMAD_NODE_POOL` is `nomad_node_pool`
 * (stacks/jobs/executor.nomad.hcl declares one per setting and hands it to the task's env).
 */
export function nomadBackendVarName(envName: string): string {
  if (!envName.startsWith('AIRFLEET_NOMAD_')) throw new Error(`${envName} is not an AIRFLEET_NOMAD_ setting`);
  return `nomad_${envName.slice('AIRFLEET_NOMAD_'.length).toLowerCase()}`;
}
