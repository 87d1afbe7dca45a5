import { parse } from '@cdktf/hcl2json';

/**
 * A jobspec the way Nomad reads it, for tests that run what a Nomad job would run: HCL syntax from
 * @cdktf/hcl2json (which writes every expression as `${…}` text), then what Nomad's HCL2 parser does with the
 * job's variables: a declared variable takes the value given (`-var`, or the Terraform provider's
 * `hcl2.vars`) or its default, a missing one without default or a value for an undeclared one is an error,
 * and `${var.x}` is replaced (a whole-string reference keeps the variable's type). Everything else in `${…}`
 * (`${NOMAD_PORT_http}`, `${NOMAD_SECRETS_DIR}`, `${attr.…}`) is left for the client, as Nomad leaves it:
 * `interpolateRuntime` does that part. Only the expressions the repository's jobspecs use are understood.
 */

type Tree = Record<string, unknown>;

export interface JobspecVariable {
  type: string;
  default?: unknown;
}

export interface Jobspec {
  variables: Record<string, JobspecVariable>;
  /** The parsed body, expressions as `${…}` strings. */
  tree: Tree;
}

export async function parseJobspec(text: string): Promise<Jobspec> {
  const tree = (await parse('job.nomad.hcl', text)) as Tree;
  const variables: Record<string, JobspecVariable> = {};
  for (const [name, blocks] of Object.entries((tree.variable ?? {}) as Record<string, Tree[]>)) {
    const block = blocks[0] ?? {};
    variables[name] = {
      type: String(block.type ?? '${string}').replace(/^\$\{(.*)\}$/, '$1'),
      ...('default' in block ? { default: block.default } : {}),
    };
  }
  return { variables, tree };
}

/** Variables the jobspec declares without a default and `given` lacks, and values for undeclared ones. */
export function variableProblems(spec: Jobspec, given: Record<string, string>): string[] {
  const problems: string[] = [];
  for (const [name, v] of Object.entries(spec.variables)) {
    if (!('default' in v) && given[name] === undefined) problems.push(`variable "${name}" has no default and no value`);
  }
  for (const name of Object.keys(given)) {
    if (!spec.variables[name]) problems.push(`a value for variable "${name}", which the jobspec does not declare`);
  }
  return problems;
}

/**
 * The job with `${var.x}` evaluated from `given` and the defaults; throws on any variable problem, as
 * `nomad job run` refuses such a job.
 */
export function evaluateJobspec(spec: Jobspec, given: Record<string, string>): Tree {
  const problems = variableProblems(spec, given);
  if (problems.length > 0) throw new Error(`Nomad would refuse the job:\n  - ${problems.join('\n  - ')}`);
  const value = (name: string): unknown => {
    const v = spec.variables[name]!;
    const raw = given[name] ?? v.default;
    if (v.type === 'number') {
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new Error(`variable "${name}" is a number; "${String(raw)}" is not`);
      return n;
    }
    return raw;
  };
  const walk = (node: unknown): unknown => {
    if (typeof node === 'string') {
      const whole = /^\$\{var\.([a-z_][a-z0-9_]*)\}$/.exec(node);
      if (whole) {
        if (!spec.variables[whole[1]!]) throw new Error(`${node}: no variable "${whole[1]}" is declared`);
        return value(whole[1]!);
      }
      return node.replace(/\$\{var\.([a-z_][a-z0-9_]*)\}/g, (_, name: string) => {
        if (!spec.variables[name]) throw new Error(`${node}: no variable "${name}" is declared`);
        return String(value(name));
      });
    }
    if (Array.isArray(node)) return node.map(walk);
    if (node && typeof node === 'object') {
      return Object.fromEntries(Object.entries(node as Tree).map(([k, v]) => [k, walk(v)]));
    }
    return node;
  };
  const { variable: _, ...body } = spec.tree;
  return walk(body) as Tree;
}

/** Nomad's runtime interpolation (`${NOMAD_SECRETS_DIR}`…) as the client does it; unknown references are errors. */
export function interpolateRuntime(text: string, runtime: Record<string, string>): string {
  return text.replace(/\$\{([^}]+)\}/g, (_, ref: string) => {
    const value = runtime[ref];
    if (value === undefined) throw new Error(`${text}: nothing here provides \${${ref}}; extend the runtime`);
    return value;
  });
}

export interface NomadTemplate {
  data: string;
  destination: string;
  perms?: string;
  uid?: number;
  gid?: number;
  changeMode: string;
  env: boolean;
}

export interface NomadDockerTask {
  jobId: string;
  namespace: string;
  datacenters: string[];
  nodePool: string | undefined;
  group: {
    name: string;
    count: number;
    /** Port label → static port. */
    staticPorts: Record<string, number>;
    checks: Array<Record<string, unknown>>;
  };
  name: string;
  driver: string;
  config: { image: string; args: string[]; networkMode?: string; readonlyRootfs: boolean } & Record<string, unknown>;
  /** The task's `env` block, runtime references still in. */
  env: Record<string, string>;
  /** MHz and MB (the Docker driver's CPU shares and memory limit). */
  resources: { cpu?: number; memoryMb?: number };
  /** `identity { env = true }`: the workload identity token in NOMAD_TOKEN. */
  identityEnv: boolean;
  templates: NomadTemplate[];
}

const blocks = (value: unknown): Tree[] => (Array.isArray(value) ? (value as Tree[]) : []);
const labelled = (value: unknown, what: string): Array<[string, Tree]> =>
  Object.entries((value ?? {}) as Record<string, Tree[]>).map(([label, list]) => {
    if (list.length !== 1) throw new Error(`${what} "${label}" is defined ${list.length} times`);
    return [label, list[0]!];
  });

/** The one job, its one group and the named task of an evaluated jobspec, with the fields a test runs. */
export function dockerTask(job: Tree, taskName: string): NomadDockerTask {
  const jobs = labelled(job.job, 'job');
  if (jobs.length !== 1) throw new Error(`expected one job, found ${jobs.length}`);
  const [jobId, j] = jobs[0]!;
  const groups = labelled(j.group, 'group');
  if (groups.length !== 1) throw new Error(`expected one group in job "${jobId}", found ${groups.length}`);
  const [groupName, g] = groups[0]!;
  const task = labelled(g.task, 'task').find(([name]) => name === taskName)?.[1];
  if (!task) throw new Error(`job "${jobId}" has no task "${taskName}"`);
  const config = blocks(task.config)[0] ?? {};
  const resources = blocks(task.resources)[0] ?? {};
  const staticPorts: Record<string, number> = {};
  for (const network of blocks(g.network)) {
    for (const [label, port] of labelled(network.port, 'port')) {
      if (port.static !== undefined) staticPorts[label] = Number(port.static);
    }
  }
  return {
    jobId,
    namespace: String(j.namespace ?? 'default'),
    datacenters: (j.datacenters as string[] | undefined) ?? ['*'],
    nodePool: j.node_pool === undefined ? undefined : String(j.node_pool),
    group: {
      name: groupName,
      count: Number(g.count ?? 1),
      staticPorts,
      checks: blocks(g.service).flatMap((s) => blocks(s.check)),
    },
    name: taskName,
    driver: String(task.driver ?? ''),
    config: {
      ...config,
      image: String(config.image ?? ''),
      args: ((config.args as unknown[] | undefined) ?? []).map(String),
      ...(config.network_mode ? { networkMode: String(config.network_mode) } : {}),
      readonlyRootfs: config.readonly_rootfs === true,
    },
    resources: Object.fromEntries(
      Object.entries({ cpu: resources.cpu, memoryMb: resources.memory })
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, Number(v)]),
    ),
    env: Object.fromEntries(Object.entries(blocks(task.env)[0] ?? {}).map(([k, v]) => [k, String(v)])),
    identityEnv: blocks(task.identity).some((i) => i.env === true && (i.name ?? 'default') === 'default'),
    templates: blocks(task.template).map((t) => ({
      data: String(t.data ?? ''),
      destination: String(t.destination ?? ''),
      ...(t.perms !== undefined ? { perms: String(t.perms) } : {}),
      ...(t.uid !== undefined ? { uid: Number(t.uid) } : {}),
      ...(t.gid !== undefined ? { gid: Number(t.gid) } : {}),
      changeMode: String(t.change_mode ?? 'restart'),
      env: t.env === true,
    })),
  };
}

/**
 * A template body of the shape `{{ with nomadVar "<path>" }}…{{ .<item> }}…{{ end }}` rendered from Nomad
 * Variables (`<path>` → items) of the job's namespace; `null` while the variable is missing (Nomad holds the
 * task then). Other template language is refused, so a jobspec using more fails here instead of passing.
 */
export function renderNomadVarTemplate(data: string, variables: Record<string, Record<string, string>>): string | null {
  const m = /^\{\{ with nomadVar "([^"]+)" \}\}([\s\S]*)\{\{ end \}\}\n?$/.exec(data);
  if (!m) throw new Error(`template ${JSON.stringify(data)}: only {{ with nomadVar "…" }}…{{ end }} is rendered here`);
  const items = variables[m[1]!];
  if (!items) return null;
  return m[2]!.replace(/\{\{ *([^}]*?) *\}\}/g, (whole, expr: string) => {
    const item = /^\.([A-Za-z_][A-Za-z0-9_]*)$/.exec(expr);
    if (!item) throw new Error(`template expression ${whole}: only {{ .item }} is rendered here`);
    const value = items[item[1]!];
    if (value === undefined) throw new Error(`template ${whole}: the variable ${m[1]} has no item ${item[1]}`);
    return value;
  });
}
