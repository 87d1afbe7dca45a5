import { randomUUID } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { interpolateRuntime, type NomadDockerTask, renderNomadVarTemplate } from './nomad-jobspec.ts';

/**
 * What a Nomad client does to start a Docker task, done on this host so a test can run a jobspec's task as
 * deployed: the task's directories (`secrets`, `local`, the allocation's `alloc`) made and mounted where the
 * Docker driver mounts them (/secrets, /local, /alloc), the templates rendered from Nomad Variables into
 * them with their perms and owner, the runtime environment (NOMAD_* variables, the workload identity in
 * NOMAD_TOKEN when `identity { env = true }`) with the task's `env` block over it, interpolated, and the
 * driver config turned into `docker run` options. Config keys it does not know are refused, so a jobspec
 * that grows one fails the test instead of running differently.
 */

export interface ClientHostOptions {
  /** The allocation's datacenter and region (Nomad's NOMAD_DC, NOMAD_REGION). */
  datacenter: string;
  region?: string;
  /** The address the node advertises for the group's ports (NOMAD_IP_<label>). */
  ip: string;
  /** Nomad Variables of the job's namespace, path → items, for the templates. */
  variables: Record<string, Record<string, string>>;
  /** The task's workload identity token (a JWT from Nomad; any string the stand-in API accepts here). */
  identityToken: string;
}

export interface PreparedTask {
  /** The host directory mounted at /secrets (NOMAD_SECRETS_DIR): the Task API socket goes here. */
  secretsDir: string;
  /** The task's environment as the container gets it. */
  env: Record<string, string>;
  /** `docker run` options before the image: mounts, network, read-only root, limits. */
  dockerArgs: string[];
  image: string;
  args: string[];
}

const KNOWN_CONFIG = new Set(['image', 'args', 'networkMode', 'network_mode', 'readonlyRootfs', 'readonly_rootfs']);

export function prepareDockerTask(task: NomadDockerTask, options: ClientHostOptions): PreparedTask {
  if (task.driver !== 'docker') throw new Error(`task "${task.name}" uses driver ${task.driver}, not docker`);
  const unknown = Object.keys(task.config).filter((k) => !KNOWN_CONFIG.has(k));
  if (unknown.length > 0)
    throw new Error(`task "${task.name}" config has ${unknown.join(', ')}: teach prepareDockerTask`);

  const base = mkdtempSync(join(tmpdir(), 'airfleet-nomad-task-'));
  const dirs = { secrets: join(base, 'secrets'), local: join(base, 'local'), alloc: join(base, 'alloc') };
  for (const dir of Object.values(dirs)) mkdirSync(dir);
  // Nomad makes the task directories reachable by whatever user the image runs as; what is in them has its
  // own perms (templates below).
  for (const dir of Object.values(dirs)) chmodSync(dir, 0o777);

  const inContainer = { NOMAD_SECRETS_DIR: '/secrets', NOMAD_TASK_DIR: '/local', NOMAD_ALLOC_DIR: '/alloc' };
  const allocId = randomUUID();
  const runtime: Record<string, string> = {
    ...inContainer,
    NOMAD_ALLOC_ID: allocId,
    NOMAD_SHORT_ALLOC_ID: allocId.slice(0, 8),
    NOMAD_ALLOC_NAME: `${task.jobId}.${task.group.name}[0]`,
    NOMAD_ALLOC_INDEX: '0',
    NOMAD_JOB_ID: task.jobId,
    NOMAD_JOB_NAME: task.jobId,
    NOMAD_GROUP_NAME: task.group.name,
    NOMAD_TASK_NAME: task.name,
    NOMAD_NAMESPACE: task.namespace,
    NOMAD_DC: options.datacenter,
    NOMAD_REGION: options.region ?? 'global',
    ...(task.resources.cpu !== undefined ? { NOMAD_CPU_LIMIT: String(task.resources.cpu) } : {}),
    ...(task.resources.memoryMb !== undefined ? { NOMAD_MEMORY_LIMIT: String(task.resources.memoryMb) } : {}),
  };
  for (const [label, port] of Object.entries(task.group.staticPorts)) {
    Object.assign(runtime, {
      [`NOMAD_PORT_${label}`]: String(port),
      [`NOMAD_HOST_PORT_${label}`]: String(port),
      [`NOMAD_IP_${label}`]: options.ip,
      [`NOMAD_ADDR_${label}`]: `${options.ip}:${port}`,
    });
  }
  if (task.identityEnv) runtime.NOMAD_TOKEN = options.identityToken;

  // Templates render on the host into the task's directories (the same ${NOMAD_*_DIR} names, host paths).
  const onHost = { NOMAD_SECRETS_DIR: dirs.secrets, NOMAD_TASK_DIR: dirs.local, NOMAD_ALLOC_DIR: dirs.alloc };
  for (const t of task.templates) {
    const text = renderNomadVarTemplate(t.data, options.variables);
    if (text === null) {
      throw new Error(`template ${t.destination}: its Nomad Variable is missing; Nomad would hold the task here`);
    }
    if (t.env) throw new Error(`template ${t.destination} sets env: teach prepareDockerTask`);
    const destination = interpolateRuntime(t.destination, { ...runtime, ...onHost });
    if (!Object.values(onHost).some((dir) => destination.startsWith(`${dir}/`))) {
      throw new Error(`template ${t.destination}: Docker tasks render only into their secrets, local or alloc dir`);
    }
    writeFileSync(destination, text, { mode: Number.parseInt(t.perms ?? '0644', 8) });
    chmodSync(destination, Number.parseInt(t.perms ?? '0644', 8));
    if (t.uid !== undefined || t.gid !== undefined) chownSync(destination, t.uid ?? -1, t.gid ?? -1);
  }

  // The task's env block over the runtime variables (Nomad lets it override them), each interpolated.
  const env: Record<string, string> = { ...runtime };
  for (const [name, value] of Object.entries(task.env)) env[name] = interpolateRuntime(value, runtime);

  const mounts: Array<[string, string]> = [
    [dirs.secrets, inContainer.NOMAD_SECRETS_DIR],
    [dirs.local, inContainer.NOMAD_TASK_DIR],
    [dirs.alloc, inContainer.NOMAD_ALLOC_DIR],
  ];
  const dockerArgs = [
    ...mounts.flatMap(([dir, at]) => ['-v', `${dir}:${at}`]),
    ...(task.config.networkMode ? ['--network', task.config.networkMode] : []),
    ...(task.config.readonlyRootfs ? ['--read-only'] : []),
    ...(task.resources.memoryMb !== undefined ? ['--memory', `${task.resources.memoryMb}m`] : []),
    ...(task.resources.cpu !== undefined ? ['--cpu-shares', String(task.resources.cpu)] : []),
  ];
  return {
    secretsDir: dirs.secrets,
    env,
    dockerArgs,
    image: task.config.image,
    args: task.config.args.map((a) => interpolateRuntime(a, runtime)),
  };
}
