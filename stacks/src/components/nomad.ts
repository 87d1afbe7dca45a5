import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AclPolicy } from '@cdktf/provider-nomad/lib/acl-policy/index.js';
import { AclRole } from '@cdktf/provider-nomad/lib/acl-role/index.js';
import { Job } from '@cdktf/provider-nomad/lib/job/index.js';
import { Namespace } from '@cdktf/provider-nomad/lib/namespace/index.js';
import { NomadProvider } from '@cdktf/provider-nomad/lib/provider/index.js';
import type { Construct } from 'constructs';
import { AirfleetStack, type StateOptions } from '../airfleet-stack.ts';
import type { EnvironmentConfig } from '../config/schema.ts';
import { batchTargetEnv, EXECUTOR_BACKENDS } from '../lib/batch-targets.ts';
import { NOMAD_JOB_PREFIX, nomadBackendEnv, nomadBackendVarName, taskNodePools } from '../lib/nomad-backend-env.ts';
import { hclString } from '../lib/nomad-client-config.ts';
import type { DataStack } from './data.ts';
import type { RegistryStack } from './registry.ts';

export interface NomadStackProps {
  env: EnvironmentConfig;
  state: StateOptions;
  data: DataStack;
  registry: RegistryStack;
  /** The executor service jobspec. @default stacks/jobs/executor.nomad.hcl */
  jobspecPath?: string;
}

export const EXECUTOR_JOB_ID = 'airfleet-executor';
/** Namespace of the executor service job itself, apart from the tasks it submits. */
export const SYSTEM_NAMESPACE = 'airfleet-system';

export const DEFAULT_JOBSPEC = fileURLToPath(new URL('../../jobs/executor.nomad.hcl', import.meta.url));

/**
 * What the executor may do in Nomad: run and watch task jobs in the task namespace, read their logs and
 * files (rotated logs), keep an attempt's secret environment in the Nomad Variable of its job (`nomad/jobs/
 * <job prefix>-…`, which that job's tasks read by default; docs/nomad-backend.md, Secrets), see nodes
 * (lost-node events), and use the client pools' node pools.
 */
export function executorAclRules(
  taskNamespace: string,
  nodePools: readonly string[],
  jobPrefix: string = NOMAD_JOB_PREFIX,
): string {
  const pools = [...new Set(nodePools)]
    .map((pool) => `node_pool ${hclString(pool)} {\n  policy = "read"\n}`)
    .join('\n\n');
  return `namespace ${hclString(taskNamespace)} {
  capabilities = ["submit-job", "dispatch-job", "read-job", "list-jobs", "parse-job", "read-logs", "read-fs", "alloc-lifecycle"]

  variables {
    path ${hclString(`nomad/jobs/${jobPrefix}-*`)} {
      capabilities = ["write", "read", "destroy"]
    }
  }
}

${pools}

node {
  policy = "read"
}
`;
}

/**
 * Terraform reads `${` and `%{` in any JSON string as a template; a jobspec uses them for Nomad's own
 * runtime interpolation (`${NOMAD_PORT_http}`) and HCL2 expressions, so they are escaped to reach Nomad
 * unchanged.
 */
export function escapeForTerraform(text: string): string {
  return text.replace(/\$\{/g, () => '$${').replace(/%\{/g, '%%{');
}

/**
 * Nomad objects, through the Nomad provider (its own stack: it needs the Nomad API, not AWS): the task
 * namespace (Docker only, no host networking, so tasks cannot reach the instance metadata service), an ACL
 * policy and role for the executor (tokens are minted from the role outside Terraform, so no secret lands
 * in the state), and, when the executor runs on Nomad, its service job from stacks/jobs/executor.nomad.hcl
 * with a workload-identity policy bound to it.
 *
 * The provider gets only the address and region; NOMAD_TOKEN, NOMAD_CACERT, NOMAD_CLIENT_CERT and
 * NOMAD_CLIENT_KEY come from the deployer's environment.
 */
export class NomadStack extends AirfleetStack {
  readonly taskNamespace: Namespace;
  readonly executorRole: AclRole;
  readonly executorJob?: Job;

  constructor(scope: Construct, props: NomadStackProps) {
    super(scope, { ...props, component: 'nomad', aws: false });
    const env = this.env;
    const { nomad } = env;
    new NomadProvider(this, 'nomad', { address: nomad.address, region: nomad.region });
    this.pinProvider('nomad');

    // Airflow tasks may use every client pool but the executor's own (when it has one).
    const executorPool = env.executor.runtime === 'nomad' ? env.executor.nodePool : undefined;
    const nodePools = taskNodePools(env);
    if (executorPool && !nomad.clientPools.some((p) => p.nodePool === executorPool)) {
      this.node.addValidation({
        validate: () => [
          `executor.nodePool "${executorPool}" is no client pool's node pool; nomad.clientPools has ${nomad.clientPools.map((p) => p.nodePool).join(', ')}`,
        ],
      });
    }
    if (nodePools.length === 0) {
      this.node.addValidation({
        validate: () => [
          `nomad.clientPools has no pool for Airflow tasks: its only node pool is executor.nodePool "${executorPool}"; add a client pool with another node pool`,
        ],
      });
    }
    this.taskNamespace = new Namespace(this, 'task-namespace', {
      name: nomad.namespace,
      description: `airfleet ${env.name}: Airflow tasks submitted by the executor`,
      capabilities: { enabledTaskDrivers: ['docker'], disabledNetworkModes: ['host'] },
      nodePoolConfig: { default: nodePools[0] ?? 'default', allowed: nodePools },
    });
    const rules = executorAclRules(nomad.namespace, nodePools);
    const policy = new AclPolicy(this, 'executor-policy', {
      name: this.resourceName('executor'),
      description: 'airfleet executor: submit and watch task jobs',
      rulesHcl: rules,
    });
    this.executorRole = new AclRole(this, 'executor-role', {
      name: this.resourceName('executor'),
      description: 'Mint executor tokens from this role: nomad acl token create -role-name=<name>',
      policy: [{ name: policy.name }],
    });

    if (env.executor.runtime === 'nomad') {
      const executor = env.executor;
      const system = new Namespace(this, 'system-namespace', {
        name: SYSTEM_NAMESPACE,
        description: 'airfleet services (the executor)',
        capabilities: { enabledTaskDrivers: ['docker'] },
      });
      new AclPolicy(this, 'executor-workload-policy', {
        name: this.resourceName('executor-workload'),
        description: 'airfleet executor job: the same rights, bound to its workload identity',
        rulesHcl: rules,
        jobAcl: { namespace: system.name, jobId: EXECUTOR_JOB_ID },
      });
      const jobspec = readFileSync(props.jobspecPath ?? DEFAULT_JOBSPEC, 'utf8');
      this.executorJob = new Job(this, 'executor-job', {
        jobspec: escapeForTerraform(jobspec),
        hcl2: {
          vars: {
            environment: env.name,
            image: `${props.registry.repositories.executor.repositoryUrl}:${env.imageTag}`,
            namespace: system.name,
            task_namespace: this.taskNamespace.name,
            datacenter: nomad.datacenter,
            node_pool: executorPool ?? nodePools[0] ?? 'default',
            count: String(executor.count),
            cpu: String(executor.cpu),
            memory: String(executor.memoryMb),
            aws_region: env.aws.region,
            ...batchVars(env),
            database_host: props.data.connection.host,
            database_port: String(props.data.connection.port),
            database_name: props.data.connection.name,
            database_secret_arn: props.data.connection.executorSecretArn,
            // The deployed backends (also the ECS executor's) and the nomad backend, which a service on Nomad
            // always runs: it reaches Nomad through the Task API socket.
            backends: [...new Set<string>([...EXECUTOR_BACKENDS, 'nomad'])].join(','),
            ...nomadBackendVars(env),
            admin_token_secret_arn: props.data.tokens.secrets.admin.arn,
            submit_token_secret_arn: props.data.tokens.secrets.submit.arn,
            enroll_token_secret_arn: props.data.tokens.secrets.enroll.arn,
            secret_key_secret_arn: props.data.tokens.secretKey.arn,
          },
        },
        // Wait for the deployment, so a broken rollout fails the deploy (and auto_revert rolls it back).
        detach: false,
        purgeOnDestroy: true,
      });
    }
  }
}

/** The nomad backend's settings (stacks/src/lib/nomad-backend-env.ts) as the job's HCL variables. */
export function nomadBackendVars(env: EnvironmentConfig): Record<string, string> {
  return Object.fromEntries(
    Object.entries(nomadBackendEnv(env)).map(([name, value]) => [nomadBackendVarName(name), value]),
  );
}

/** The batch backend's settings as the job's HCL variables (stacks/jobs/executor.nomad.hcl). */
function batchVars(env: EnvironmentConfig): Record<string, string> {
  const targets = batchTargetEnv(env);
  return {
    batch_job_queue: targets.AIRFLEET_BATCH_JOB_QUEUE!,
    batch_job_definition: targets.AIRFLEET_BATCH_JOB_DEFINITION!,
    batch_queues: targets.AIRFLEET_BATCH_QUEUES!,
    batch_runnable_timeout_seconds: targets.AIRFLEET_BATCH_RUNNABLE_TIMEOUT_SECONDS!,
    batch_log_group: targets.AIRFLEET_BATCH_LOG_GROUP!,
  };
}
