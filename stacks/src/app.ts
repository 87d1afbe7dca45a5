import { App } from 'cdktf';
import type { Construct } from 'constructs';
import type { AirfleetStack, StateOptions } from './airfleet-stack.ts';
import { BatchStack } from './components/batch.ts';
import { DataStack } from './components/data.ts';
import { ExecutorStack } from './components/executor.ts';
import { NetworkStack } from './components/network.ts';
import { NomadStack } from './components/nomad.ts';
import { NomadClientsStack } from './components/nomad-clients.ts';
import { RegistryStack } from './components/registry.ts';
import { WorkerPoolsStack } from './components/worker-pools.ts';
import { environments as defaultEnvironments } from './config/environments/index.ts';
import type { EnvironmentConfig } from './config/schema.ts';
import { parseEnvironments } from './config/validate.ts';

export interface AirfleetAppOptions {
  /** Environment files by name (validated here). @default every file in config/environments */
  environments?: Readonly<Record<string, unknown>>;
  /** Synthesize only these environments (all are still validated). @default all of them */
  only?: readonly string[];
  /** @default $CDKTF_OUTDIR, else 'cdktf.out' */
  outdir?: string;
  /** Keep every stack's state locally in this directory (tests, moto). @default each environment's `state` */
  localStateDir?: string;
  /** Executor jobspec for the nomad stack. @default stacks/jobs/executor.nomad.hcl */
  jobspecPath?: string;
}

/** The stacks of one environment, by component. */
export interface EnvironmentStacks {
  network: NetworkStack;
  registry: RegistryStack;
  data: DataStack;
  batch: BatchStack;
  nomadClients: NomadClientsStack;
  /** Only when the executor runs on ECS; on Nomad the nomad stack runs it. */
  executor?: ExecutorStack;
  workerPools: WorkerPoolsStack;
  nomad: NomadStack;
}

export interface AirfleetApp {
  app: App;
  environments: Map<string, EnvironmentStacks>;
  /** Every stack, in construction order (dependencies first). */
  stacks: AirfleetStack[];
}

/**
 * Creates the stacks of one environment. Data flows between them as references (cdktf turns each into an
 * output of one stack and a remote-state lookup in the other, and records the dependency); the explicit
 * dependencies below are the ones no reference implies but deploy order needs.
 */
export function addEnvironment(
  scope: Construct,
  env: EnvironmentConfig,
  state: StateOptions,
  options: { jobspecPath?: string } = {},
): EnvironmentStacks {
  const base = { env, state };
  const network = new NetworkStack(scope, base);
  const registry = new RegistryStack(scope, base);
  const data = new DataStack(scope, { ...base, network });
  const batch = new BatchStack(scope, { ...base, network, registry });
  const nomadClients = new NomadClientsStack(scope, { ...base, network, data });
  const executor =
    env.executor.runtime === 'ecs' ? new ExecutorStack(scope, { ...base, network, data, registry }) : undefined;
  const workerPools = new WorkerPoolsStack(scope, {
    ...base,
    network,
    executorUrl: executor ? executor.url : env.executor.runtime === 'nomad' ? env.executor.url : '',
  });
  const nomad = new NomadStack(scope, {
    ...base,
    data,
    registry,
    ...(options.jobspecPath ? { jobspecPath: options.jobspecPath } : {}),
  });

  // The executor submits to Batch queues it finds by name, and needs them to exist when it starts.
  executor?.addDependency(batch);
  // Workers register with a running executor.
  workerPools.addDependency(executor ?? nomad);
  // The executor job and task jobs are placed on the clients; the namespace must exist for the executor.
  nomad.addDependency(nomadClients);
  if (!executor) nomad.addDependency(batch);
  return { network, registry, data, batch, nomadClients, ...(executor ? { executor } : {}), workerPools, nomad };
}

export class UnknownEnvironmentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnknownEnvironmentError';
  }
}

/** Validates every environment (all problems at once), then builds the app with the selected ones. */
export function buildApp(options: AirfleetAppOptions = {}): AirfleetApp {
  const parsed = parseEnvironments(options.environments ?? defaultEnvironments);
  const unknown = (options.only ?? []).filter((name) => !parsed.some((env) => env.name === name));
  if (unknown.length > 0) {
    throw new UnknownEnvironmentError(
      `Unknown environment ${unknown.map((n) => `"${n}"`).join(', ')}; defined: ${parsed.map((e) => e.name).join(', ')}`,
    );
  }
  const selected = options.only ? parsed.filter((env) => options.only!.includes(env.name)) : parsed;
  const outdir = options.outdir ?? process.env.CDKTF_OUTDIR ?? 'cdktf.out';
  // Stack traces on every construct cost more synth time than the whole rest of the app.
  const app = new App({ outdir, stackTraces: false });
  const state: StateOptions = { outdir, ...(options.localStateDir ? { localStateDir: options.localStateDir } : {}) };
  const environments = new Map<string, EnvironmentStacks>();
  const stacks: AirfleetStack[] = [];
  for (const env of selected) {
    const envStacks = addEnvironment(app, env, state, options.jobspecPath ? { jobspecPath: options.jobspecPath } : {});
    environments.set(env.name, envStacks);
    stacks.push(...(Object.values(envStacks) as AirfleetStack[]));
  }
  return { app, environments, stacks };
}
