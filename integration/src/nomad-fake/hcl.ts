import { parse } from '@cdktf/hcl2json';
import type { NomadJob, NomadTask, NomadTaskGroup } from '../../../executor/src/backends/nomad/nomad-types.ts';
import { FakeApiError } from './cluster.ts';

type Block = Record<string, unknown>;

const first = (value: unknown): Block | undefined => (Array.isArray(value) ? (value[0] as Block) : undefined);
const labelled = (value: unknown): Array<[string, Block]> =>
  Object.entries((value as Record<string, Block[]>) ?? {}).map(([label, blocks]) => [label, blocks[0]!]);
const constraints = (value: unknown) =>
  ((value as Block[] | undefined) ?? []).map((c) => ({
    LTarget: String(c.attribute ?? ''),
    RTarget: String(c.value ?? ''),
    Operand: String(c.operator ?? '='),
  }));

/**
 * THE NOMAD FAKE's `/v1/jobs/parse`: the HCL2 job stanzas airfleet templates use (job, group, task, config,
 * env, resources with device, volume, volume_mount, template, constraint, meta, logs, restart, reschedule,
 * ephemeral_disk), mapped to the API's JSON field names. HCL syntax comes from @cdktf/hcl2json; Nomad's
 * own functions and variables are not evaluated.
 */
export async function parseJobHcl(text: string): Promise<NomadJob> {
  let tree: Record<string, unknown>;
  try {
    tree = (await parse('job.nomad.hcl', text)) as Record<string, unknown>;
  } catch (error) {
    throw new FakeApiError(400, `error parsing: ${(error as Error).message}`);
  }
  const jobs = labelled(tree.job);
  if (jobs.length !== 1) throw new FakeApiError(400, `error parsing: expected one job block, found ${jobs.length}`);
  const [id, j] = jobs[0]!;
  return {
    ID: id,
    Name: id,
    Type: (j.type as string | undefined) ?? 'service',
    ...(j.namespace ? { Namespace: String(j.namespace) } : {}),
    ...(j.datacenters ? { Datacenters: j.datacenters as string[] } : {}),
    ...(j.node_pool ? { NodePool: String(j.node_pool) } : {}),
    ...(j.priority ? { Priority: Number(j.priority) } : {}),
    ...(first(j.meta) ? { Meta: first(j.meta) as Record<string, string> } : {}),
    Constraints: constraints(j.constraint),
    TaskGroups: labelled(j.group).map(([name, g]) => group(name, g)),
  };
}

function group(name: string, g: Block): NomadTaskGroup {
  const restart = first(g.restart);
  const disk = first(g.ephemeral_disk);
  return {
    Name: name,
    Count: Number(g.count ?? 1),
    Constraints: constraints(g.constraint),
    ...(restart
      ? { RestartPolicy: { Attempts: Number(restart.attempts ?? 0), Mode: String(restart.mode ?? 'fail') } }
      : {}),
    ...(disk ? { EphemeralDisk: { SizeMB: Number(disk.size ?? 300) } } : {}),
    ...(first(g.meta) ? { Meta: first(g.meta) as Record<string, string> } : {}),
    Volumes: Object.fromEntries(
      labelled(g.volume).map(([v, b]) => [
        v,
        { Name: v, Type: String(b.type ?? 'host'), Source: String(b.source ?? v), ReadOnly: Boolean(b.read_only) },
      ]),
    ),
    Tasks: labelled(g.task).map(([t, b]) => task(t, b)),
  };
}

function task(name: string, t: Block): NomadTask {
  const resources = first(t.resources);
  const logs = first(t.logs);
  return {
    Name: name,
    Driver: String(t.driver ?? ''),
    Config: first(t.config) ?? {},
    Env: (first(t.env) as Record<string, string> | undefined) ?? {},
    ...(resources
      ? {
          Resources: {
            ...(resources.cpu ? { CPU: Number(resources.cpu) } : {}),
            ...(resources.cores ? { Cores: Number(resources.cores) } : {}),
            ...(resources.memory ? { MemoryMB: Number(resources.memory) } : {}),
            ...(resources.memory_max ? { MemoryMaxMB: Number(resources.memory_max) } : {}),
            ...(resources.device
              ? { Devices: labelled(resources.device).map(([d, b]) => ({ Name: d, Count: Number(b.count ?? 1) })) }
              : {}),
          },
        }
      : {}),
    VolumeMounts: ((t.volume_mount as Block[] | undefined) ?? []).map((m) => ({
      Volume: String(m.volume),
      Destination: String(m.destination),
      ReadOnly: Boolean(m.read_only),
    })),
    Templates: ((t.template as Block[] | undefined) ?? []).map((m) => ({
      EmbeddedTmpl: String(m.data ?? ''),
      DestPath: String(m.destination ?? ''),
      Envvars: Boolean(m.env),
      ChangeMode: String(m.change_mode ?? 'restart'),
    })),
    Constraints: constraints(t.constraint),
    ...(first(t.meta) ? { Meta: first(t.meta) as Record<string, string> } : {}),
    ...(logs
      ? { LogConfig: { MaxFiles: Number(logs.max_files ?? 10), MaxFileSizeMB: Number(logs.max_file_size ?? 10) } }
      : {}),
  };
}
