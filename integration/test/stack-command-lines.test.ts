import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { prepareWorkerHost, type SynthesizedDeployment, synthesizeDeployment } from '../src/deployed-commands.ts';
import { projectImage, testLabels } from '../src/docker-env.ts';
import { dockerTask, evaluateJobspec, interpolateRuntime, parseJobspec } from '../src/nomad-jobspec.ts';

// Every command line the stacks give an image, taken from the synthesized stacks and run against the built
// executor image (entrypoint `tini -- airfleet`) with `--check`: the command must exist, every option must
// be one the command knows, and the configuration the deployment's environment gives must validate. A
// line such as `airfleet serve` (which the entrypoint turns into `airfleet airfleet serve`) fails here.

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const labelArgs = () => Object.entries(testLabels()).flatMap(([k, v]) => ['--label', `${k}=${v}`]);

/** `docker run` of the executor image the way ECS or Nomad would: read-only root, the given env and args. */
function runImage(args: string[], env: Record<string, string>, readOnly: boolean): Promise<Run> {
  return run('docker', [
    'run',
    '--rm',
    ...labelArgs(),
    ...(readOnly ? ['--read-only'] : []),
    ...Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    projectImage('executor'),
    ...args,
  ]);
}

function checked(result: Run): Record<string, unknown> {
  if (result.code !== 0) throw new Error(`exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  const last = result.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as Record<string, unknown>;
}

/** A stand-in for a value Terraform fills in at apply time, valid where the value is: a host name, an ARN. */
function unresolved(name: string): string {
  if (/_arn$/i.test(name)) return 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:unresolved-AbCdEf';
  return 'unresolved.invalid';
}

let deployment: SynthesizedDeployment;
beforeAll(() => {
  deployment = synthesizeDeployment();
});
afterAll(() => {
  if (deployment) rmSync(deployment.outdir, { recursive: true, force: true });
});

describe('command lines the stacks give the executor image', () => {
  it('the ECS task definition (dev) starts `serve` with its environment', async () => {
    const container = deployment.ecsContainer('dev');
    const env = Object.fromEntries([
      ...Object.entries(container.environment).map(([k, v]) => [k, v.includes('${') ? unresolved(k) : v]),
      // ECS resolves `secrets` when the task starts; --check needs only that they are there.
      ...Object.keys(container.secrets).map((k) => [k, 'resolved-by-ecs']),
    ]);
    const result = checked(await runImage([...container.command, '--check'], env, container.readonlyRootFilesystem));
    expect(result).toMatchObject({ ok: true, listen: `https://0.0.0.0:${container.environment['AIRFLEET_PORT']}` });
  }, 120_000);

  it('the Nomad executor job (staging) starts `serve` with its task environment', async () => {
    const { jobspec, vars } = deployment.nomadJob('staging');
    const given = Object.fromEntries(
      Object.entries(vars).map(([name, value]) => [name, value.includes('${') ? unresolved(name) : value]),
    );
    const task = dockerTask(evaluateJobspec(await parseJobspec(jobspec), given), 'executor');
    const runtime = { NOMAD_PORT_http: '8470', NOMAD_SECRETS_DIR: '/secrets' };
    const env = Object.fromEntries(
      Object.entries(task.env).map(([name, value]) => [name, interpolateRuntime(value, runtime)]),
    );
    const result = checked(await runImage([...task.config.args, '--check'], env, task.config.readonlyRootfs));
    expect(result).toMatchObject({ ok: true, listen: 'https://0.0.0.0:8470' });
  }, 120_000);

  it.each(['dev', 'staging', 'prod'])(
    'the worker pools user data (%s) starts `worker` with its options',
    async (env) => {
      const host = prepareWorkerHost(deployment.workerRunScript(env), {
        apiUrl: 'http://127.0.0.1:9',
        image: projectImage('executor'),
        token: 'aft_check_only',
        labels: testLabels(),
        extraArgs: ['--check'],
      });
      const result = checked(await run('bash', [host.script], host.env));
      expect(result).toMatchObject({ ok: true, apiUrl: 'http://127.0.0.1:9', runtime: 'docker' });
    },
    120_000,
  );

  it('fails a line that names the program again (the entrypoint is `tini -- airfleet`)', async () => {
    const result = await runImage(['airfleet', 'serve', '--check'], {}, true);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/unknown command 'airfleet'/);
  }, 120_000);
});
