import type { Workload } from '../../domain/workload.ts';
import type { NomadExecConfig } from './exec-config.ts';
import type { NomadConfig } from './nomad-config.ts';
import type { NomadConstraint, NomadJob, NomadTask, NomadTaskGroup } from './nomad-types.ts';

/** Meta every job carries; reconcile and the watcher check them before trusting a job found by id. */
export const META_WORKLOAD = 'airfleet_workload_id';
export const META_ATTEMPT = 'airfleet_attempt';

/** A job template or override that cannot make a valid job; the message names what to change. */
export class JobSpecError extends Error {
  override name = 'JobSpecError';
}

/** `<prefix>-<workload id>-<attempt>`: one job per attempt, found again by id after a crash. */
export function jobId(prefix: string, workloadId: string, attempt: number): string {
  return `${prefix}-${workloadId}-${attempt}`;
}

/** Parses `<prefix>-<uuid>-<attempt>` back; null for jobs that are not airfleet's. */
export function parseJobId(prefix: string, id: string): { workloadId: string; attempt: number } | null {
  if (!id.startsWith(`${prefix}-`)) return null;
  const rest = id.slice(prefix.length + 1);
  const cut = rest.lastIndexOf('-');
  const attempt = Number(rest.slice(cut + 1));
  if (cut <= 0 || !Number.isInteger(attempt) || attempt < 1) return null;
  return { workloadId: rest.slice(0, cut), attempt };
}

/**
 * The Nomad variable holding an attempt's secret environment. Tasks may read `nomad/jobs/<job id>` with
 * their workload identity without any ACL policy, and nobody else needs to.
 */
export function secretVariablePath(id: string): string {
  return `nomad/jobs/${id}`;
}

/** Renders the variable into `secrets/` (tmpfs, not visible in the job) and into the task's environment. */
export function secretTemplate(path: string): NonNullable<NomadTask['Templates']>[number] {
  return {
    EmbeddedTmpl: `{{ with nomadVar "${path}" }}{{ range $k, $v := . }}{{ $k }}={{ $v | toJSON }}\n{{ end }}{{ end }}`,
    DestPath: 'secrets/airfleet-secret.env',
    Envvars: true,
    ChangeMode: 'noop',
  };
}

/** A template is Nomad job JSON (`{"Job": {...}}` or the job itself); HCL goes through `/v1/jobs/parse` first. */
export function isJsonTemplate(text: string): boolean {
  return text.trimStart().startsWith('{');
}

export function jobFromJson(text: string, where: string): NomadJob {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new JobSpecError(`${where}: not valid JSON (${(error as Error).message})`);
  }
  const job = (isObject(value) && isObject(value.Job) ? value.Job : value) as NomadJob;
  if (!isObject(job) || !Array.isArray(job.TaskGroups)) {
    throw new JobSpecError(`${where}: a Nomad job in JSON needs TaskGroups (the shape of GET /v1/job/:id)`);
  }
  return job;
}

/** The job of no template: one group, one Docker task. */
function skeleton(): NomadJob {
  return { TaskGroups: [{ Name: 'airfleet', Tasks: [{ Name: 'task', Driver: 'docker', Config: {} }] }] };
}

/**
 * The job of one attempt: the template (or the skeleton), the workload's `execConfig.nomad` over it, and
 * what the executor owns over both: the id, `batch`, one group with `Count 1`, restart `Attempts 0, Mode fail`
 * and reschedule off (a rerun is the service's decision, never Nomad's, so a started task never runs twice),
 * the Docker driver, the command, the environment (never a secret: those come from the variable through
 * `secretVar`'s template), the resources and the meta that name the workload and attempt.
 */
export function buildJob(
  workload: Workload,
  attempt: number,
  config: NomadConfig,
  template: NomadJob | null,
  exec: NomadExecConfig,
  secretVar: string | null,
): NomadJob {
  const job = structuredClone(template ?? skeleton());
  const id = jobId(config.jobPrefix, workload.id, attempt);
  const groups = job.TaskGroups ?? [];
  if (groups.length !== 1) throw new JobSpecError(`the job template has ${groups.length} groups; it needs exactly one`);
  const group = groups[0] as NomadTaskGroup;
  const tasks = group.Tasks ?? [];
  if (tasks.length !== 1) {
    throw new JobSpecError(`the job template's group '${group.Name}' has ${tasks.length} tasks; it needs exactly one`);
  }
  const task = tasks[0] as NomadTask;
  if (task.Driver && task.Driver !== 'docker') {
    throw new JobSpecError(`the job template's task uses the '${task.Driver}' driver; airfleet runs tasks with docker`);
  }

  job.ID = id;
  job.Name = id;
  job.Type = 'batch';
  job.Namespace = config.namespace;
  if (config.region) job.Region = config.region;
  if (!job.Datacenters || job.Datacenters.length === 0) job.Datacenters = config.datacenters;
  if (config.nodePool && !job.NodePool) job.NodePool = config.nodePool;
  job.Meta = { ...job.Meta, [META_WORKLOAD]: workload.id, [META_ATTEMPT]: String(attempt) };

  group.Name ||= 'airfleet';
  group.Count = 1;
  group.RestartPolicy = { ...group.RestartPolicy, Attempts: 0, Mode: 'fail' };
  group.ReschedulePolicy = { Attempts: 0, Unlimited: false };
  if (exec.ephemeralDiskMb !== undefined)
    group.EphemeralDisk = { ...group.EphemeralDisk, SizeMB: exec.ephemeralDiskMb };

  task.Name ||= 'task';
  task.Driver = 'docker';
  const image = exec.image ?? workload.image ?? (task.Config?.image as string | undefined) ?? config.defaultImage;
  if (!image) {
    throw new JobSpecError(
      'no image for the task: give the workload an image, or set execConfig.nomad.image, the template, or AIRFLEET_NOMAD_DEFAULT_IMAGE',
    );
  }
  const [program, ...rest] = workload.command;
  task.Config = {
    ...task.Config,
    image,
    command: program,
    args: exec.args ?? rest,
    ...(exec.entrypoint ? { entrypoint: exec.entrypoint } : {}),
  };
  task.Env = {
    ...task.Env,
    ...exec.env,
    ...workload.env,
    AIRFLEET_WORKLOAD_ID: workload.id,
    AIRFLEET_ATTEMPT: String(attempt),
  };
  task.Templates = (task.Templates ?? []).filter((t) => t.DestPath !== 'secrets/airfleet-secret.env');
  if (secretVar) task.Templates.push(secretTemplate(secretVar));

  const resources = { ...task.Resources };
  if (workload.resources.cpu !== undefined) {
    // 1 CPU of the workload is 1,000 MHz of Nomad's share-based CPU; execConfig can ask for cores instead.
    resources.CPU = Math.max(1, Math.round(workload.resources.cpu * 1000));
  }
  if (workload.resources.memoryMb !== undefined) resources.MemoryMB = workload.resources.memoryMb;
  if (workload.resources.gpus) {
    resources.Devices = [
      ...(resources.Devices ?? []).filter((d) => d.Name !== 'nvidia/gpu'),
      { Name: 'nvidia/gpu', Count: workload.resources.gpus },
    ];
  }
  const r = exec.resources;
  if (r?.cpu !== undefined) {
    resources.CPU = r.cpu;
    delete resources.Cores;
  }
  if (r?.cores !== undefined) {
    resources.Cores = r.cores;
    delete resources.CPU;
  }
  if (r?.memoryMb !== undefined) resources.MemoryMB = r.memoryMb;
  if (r?.memoryMaxMb !== undefined) resources.MemoryMaxMB = r.memoryMaxMb;
  if (r?.devices) {
    resources.Devices = r.devices.map((d) => ({
      Name: d.name,
      Count: d.count,
      ...(d.constraints ? { Constraints: d.constraints.map(toConstraint) } : {}),
    }));
  }
  task.Resources = resources;

  // Volumes: the template's, else the configured host volumes (config, dags), read-only.
  const templateHasVolumes = Object.keys(group.Volumes ?? {}).length > 0;
  const volumes = { ...group.Volumes };
  const mounts = [...(task.VolumeMounts ?? [])];
  if (!templateHasVolumes) {
    for (const [name, destination] of Object.entries(config.hostVolumes)) {
      volumes[name] = { Name: name, Type: 'host', Source: name, ReadOnly: true };
      mounts.push({ Volume: name, Destination: destination, ReadOnly: true });
    }
  }
  for (const [name, v] of Object.entries(exec.volumes ?? {})) {
    volumes[name] = { Name: name, Type: v.type, Source: v.source, ReadOnly: v.readOnly };
  }
  for (const [i, m] of (exec.volumeMounts ?? []).entries()) {
    if (!volumes[m.volume]) {
      throw new JobSpecError(
        `execConfig.nomad.volumeMounts.${i}.volume: '${m.volume}' is not a volume of the job template (it has: ${
          Object.keys(volumes).join(', ') || 'none'
        }); add it to the template or to execConfig.nomad.volumes`,
      );
    }
    const at = mounts.findIndex((x) => x.Destination === m.destination);
    const mount = { Volume: m.volume, Destination: m.destination, ReadOnly: m.readOnly };
    if (at >= 0) mounts[at] = mount;
    else mounts.push(mount);
  }
  if (Object.keys(volumes).length > 0) group.Volumes = volumes;
  if (mounts.length > 0) task.VolumeMounts = mounts;

  if (exec.constraints) task.Constraints = [...(task.Constraints ?? []), ...exec.constraints.map(toConstraint)];
  if (exec.meta) task.Meta = { ...task.Meta, ...exec.meta };
  task.LogConfig = {
    MaxFiles: task.LogConfig?.MaxFiles ?? config.logMaxFiles,
    MaxFileSizeMB: task.LogConfig?.MaxFileSizeMB ?? config.logMaxFileSizeMb,
  };
  return job;
}

function toConstraint(c: {
  attribute?: string | undefined;
  operator: string;
  value?: string | undefined;
}): NomadConstraint {
  return { LTarget: c.attribute ?? '', Operand: c.operator, RTarget: c.value ?? '' };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
