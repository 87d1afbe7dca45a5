import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../../stacks/src/app.ts';
import { workerGroups } from '../../stacks/src/components/worker-pools.ts';
import { environments } from '../../stacks/src/config/environments/index.ts';
import { parseEnvironments } from '../../stacks/src/config/validate.ts';

/**
 * The command lines the stacks give the images, read from what `cdktf synth` writes (cdktf.out/stacks/
 * <stack>/cdk.tf.json), so tests run exactly what a deployment would: the ECS task definition's container,
 * the Nomad executor job's task (the jobspec as the nomad stack hands it to Terraform) and the worker pools'
 * user data.
 */

interface StackJson {
  resource?: Record<string, Record<string, Record<string, unknown>>>;
  output?: Record<string, { value: unknown }>;
}

export interface EcsContainer {
  command: string[];
  environment: Record<string, string>;
  /** Secret name -> valueFrom (an ARN, optionally `:json-key::`). */
  secrets: Record<string, string>;
  readonlyRootFilesystem: boolean;
}

/** The executor job as the nomad stack hands it to Terraform: the jobspec Nomad gets and its HCL2 variables. */
export interface NomadJobSource {
  jobspec: string;
  vars: Record<string, string>;
}

export interface SynthesizedDeployment {
  outdir: string;
  stack(name: string): StackJson;
  /** The executor container of `<env>-executor` (environments whose executor runs on ECS). */
  ecsContainer(env: string): EcsContainer;
  /** The executor job of `<env>-nomad` (environments whose executor runs on Nomad), read by src/nomad-jobspec.ts. */
  nomadJob(env: string): NomadJobSource;
  /** `/usr/local/sbin/airfleet-worker-run` from the first worker group's user data. */
  workerRunScript(env: string): string;
}

function only<T>(values: T[], what: string): T {
  if (values.length !== 1) throw new Error(`expected exactly one ${what}, found ${values.length}`);
  return values[0]!;
}

/** Synthesizes the given environments (all by default) into a temporary cdktf.out. */
export function synthesizeDeployment(only_?: string[]): SynthesizedDeployment {
  const outdir = mkdtempSync(join(tmpdir(), 'airfleet-deployed-'));
  buildApp({ outdir, ...(only_ ? { only: only_ } : {}) }).app.synth();
  const stack = (name: string) =>
    JSON.parse(readFileSync(join(outdir, 'stacks', name, 'cdk.tf.json'), 'utf8')) as StackJson;
  return {
    outdir,
    stack,
    ecsContainer(env) {
      const task = only(Object.values(stack(`${env}-executor`).resource?.['aws_ecs_task_definition'] ?? {}), 'task');
      const container = only(
        JSON.parse(String(task['container_definitions'])) as Array<Record<string, unknown>>,
        'container',
      );
      const pairs = (key: string, value: string) =>
        Object.fromEntries(
          ((container[key] ?? []) as Array<Record<string, string>>).map((e) => [e['name']!, e[value]!]),
        );
      return {
        command: container['command'] as string[],
        environment: pairs('environment', 'value'),
        secrets: pairs('secrets', 'valueFrom'),
        readonlyRootFilesystem: container['readonlyRootFilesystem'] === true,
      };
    },
    nomadJob(env) {
      const job = only(Object.values(stack(`${env}-nomad`).resource?.['nomad_job'] ?? {}), 'nomad_job');
      // The nomad stack escapes Nomad's own `${…}` for Terraform (stacks/src/components/nomad.ts); Terraform
      // hands Nomad the unescaped text.
      const jobspec = String(job['jobspec'])
        .replace(/\$\$\{/g, '${')
        .replace(/%%\{/g, '%{');
      const vars = ((job['hcl2'] as { vars?: Record<string, string> } | undefined)?.vars ?? {}) as Record<
        string,
        string
      >;
      return { jobspec, vars };
    },
    workerRunScript(env) {
      const config = parseEnvironments(environments).find((e) => e.name === env);
      if (!config) throw new Error(`no environment ${env}`);
      const group = workerGroups(config)[0]!;
      const templates = stack(`${env}-worker-pools`).resource?.['aws_launch_template'] ?? {};
      const template = Object.values(templates).find((t) => t['name'] === group.name);
      if (!template) throw new Error(`no launch template ${group.name} in ${env}-worker-pools`);
      const userData = Buffer.from(String(template['user_data']), 'base64').toString('utf8');
      const doc = JSON.parse(userData.replace(/^#cloud-config\n/, '')) as {
        write_files: Array<{ path: string; content: string }>;
      };
      return only(
        doc.write_files.filter((f) => f.path === '/usr/local/sbin/airfleet-worker-run'),
        'airfleet-worker-run',
      ).content;
    },
  };
}

export interface WorkerRunHost {
  /** The worker container's name (the shim's, in place of airfleet-worker). */
  containerName: string;
  /** Stands in for /run/airfleet (what airfleet-worker-prepare writes: run.env, token.env). */
  runDir: string;
  /** The script with /run/airfleet pointed at runDir; run it with `env` (PATH has the docker shim first). */
  script: string;
  /** The script's text, as run. */
  scriptText: string;
  env: NodeJS.ProcessEnv;
}

/**
 * Prepares a host to run the worker pools' airfleet-worker-run script as the instance would, after
 * airfleet-worker-prepare: run.env (executor URL, image) and token.env (the enrollment token) in a private
 * directory standing in for /run/airfleet. The only other change is a `docker` shim first on PATH that adds
 * the test's labels and a unique container name to `docker run` (so teardown finds the container and parallel
 * runs do not collide), and appends `extraArgs` (e.g. `--check`) to the container's command.
 */
export function prepareWorkerHost(
  runScript: string,
  options: {
    apiUrl: string;
    image: string;
    token: string;
    labels: Record<string, string>;
    extraArgs?: string[];
    /** More `docker run` options, before the image (e.g. a CA to trust). */
    dockerRunArgs?: string[];
  },
): WorkerRunHost {
  const base = mkdtempSync(join(tmpdir(), 'airfleet-worker-host-'));
  const runDir = join(base, 'run-airfleet');
  const bin = join(base, 'bin');
  mkdirSync(runDir, { mode: 0o700 });
  mkdirSync(bin);
  // As airfleet-worker-prepare writes it (the instance's id and type come from the metadata service there).
  writeFileSync(
    join(runDir, 'run.env'),
    `AIRFLEET_API_URL=${options.apiUrl}\nAIRFLEET_INSTANCE_ID=i-0a1b2c3d4e5f67890\nAIRFLEET_INSTANCE_TYPE=m7i.large\nAIRFLEET_IMAGE=${options.image}\n`,
  );
  writeFileSync(join(runDir, 'token.env'), `AIRFLEET_TOKEN=${options.token}\n`, { mode: 0o600 });
  const realDocker = execFileSync('sh', ['-c', 'command -v docker'], { encoding: 'utf8' }).trim();
  const labels = Object.entries(options.labels)
    .map(([k, v]) => `--label ${shellQuote(`${k}=${v}`)}`)
    .join(' ');
  const name = `airfleet-worker-${process.pid}-${Date.now()}`;
  writeFileSync(
    join(bin, 'docker'),
    `#!/usr/bin/env bash
# Test shim (integration/src/deployed-commands.ts): labels and a unique name on \`docker run\`, extra args appended.
if [ "$1" = run ]; then
  shift
  args=()
  for a in "$@"; do [ "$a" = airfleet-worker ] && a=${name}; args+=("$a"); done
  exec ${realDocker} run ${labels} ${(options.dockerRunArgs ?? []).map(shellQuote).join(' ')} "\${args[@]}" ${(options.extraArgs ?? []).map(shellQuote).join(' ')}
fi
exec ${realDocker} "$@"
`,
  );
  chmodSync(join(bin, 'docker'), 0o755);
  const script = runScript.replaceAll('/run/airfleet/', `${runDir}/`);
  if (script === runScript) throw new Error('the worker run script no longer reads /run/airfleet: update this helper');
  writeFileSync(join(base, 'airfleet-worker-run'), script, { mode: 0o755 });
  return {
    containerName: name,
    runDir,
    scriptText: script,
    script: join(base, 'airfleet-worker-run'),
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
  };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
