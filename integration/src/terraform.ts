import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Terraform for the integration tier, offline: providers come from a local filesystem mirror (no registry
 * is reachable), every command runs non-interactively with checkpoint calls off, and anything missing is
 * reported as a reason a test can print instead of a failure it cannot explain.
 */

/** The machine's provider mirror (layout: <host>/<namespace>/<type>/<version>/<os>_<arch>/). */
export const PROVIDER_MIRROR = process.env.AIRFLEET_TF_PROVIDER_MIRROR ?? '/opt/tf-plugins';
const REGISTRY_HOST = 'registry.terraform.io';

export type Availability<T> = ({ ok: true } & T) | { ok: false; reason: string };

/** The terraform binary on PATH (or $TERRAFORM), with its version, or why there is none. */
export function findTerraform(): Availability<{ binary: string; version: string }> {
  const binary = process.env.TERRAFORM ?? 'terraform';
  const result = spawnSync(binary, ['version', '-json'], {
    encoding: 'utf8',
    env: { ...process.env, CHECKPOINT_DISABLE: '1' },
  });
  if (result.error) return { ok: false, reason: `no terraform binary (${binary}: ${result.error.message})` };
  if (result.status !== 0) return { ok: false, reason: `\`${binary} version\` failed: ${result.stderr.trim()}` };
  const version = String((JSON.parse(result.stdout) as { terraform_version?: string }).terraform_version);
  return { ok: true, binary, version };
}

/** Providers in the mirror for this platform, as `hashicorp/aws@5.100.0`. */
export function mirroredProviders(mirror = PROVIDER_MIRROR): Set<string> {
  const found = new Set<string>();
  const platform = `${process.platform}_${process.arch === 'x64' ? 'amd64' : process.arch}`;
  const base = join(mirror, REGISTRY_HOST);
  if (!existsSync(base)) return found;
  for (const namespace of readdirSync(base)) {
    for (const type of readdirSync(join(base, namespace))) {
      for (const version of readdirSync(join(base, namespace, type))) {
        if (existsSync(join(base, namespace, type, version, platform))) found.add(`${namespace}/${type}@${version}`);
      }
    }
  }
  return found;
}

export interface ProviderRequirement {
  name: string;
  source: string;
  version: string;
}

/** `terraform.required_providers` of a synthesized stack (cdk.tf.json). */
export function providerRequirements(stackJson: unknown): ProviderRequirement[] {
  const terraform = (stackJson as { terraform?: { required_providers?: Record<string, unknown> } }).terraform;
  return Object.entries(terraform?.required_providers ?? {}).map(([name, req]) => {
    const { source = name, version = '' } = (req ?? {}) as { source?: string; version?: string };
    return { name, source, version };
  });
}

/** Requirements the mirror cannot satisfy, as readable `source version` strings. */
export function missingFromMirror(stackJson: unknown, mirrored: Set<string>): string[] {
  return providerRequirements(stackJson)
    .filter((p) => !mirrored.has(`${p.source.replace(`${REGISTRY_HOST}/`, '')}@${p.version}`))
    .map((p) => `${p.source} ${p.version}`);
}

/**
 * A CLI config that installs the mirrored providers from the mirror and nothing else from anywhere (so a
 * missing provider fails `init` at once instead of timing out on the registry).
 */
export function writeCliConfig(file: string, mirrored: Set<string>, mirror = PROVIDER_MIRROR): string {
  const addresses = [...new Set([...mirrored].map((p) => `"${REGISTRY_HOST}/${p.split('@')[0]}"`))].join(', ');
  writeFileSync(
    file,
    `provider_installation {
  filesystem_mirror {
    path    = "${mirror}"
    include = [${addresses}]
  }
  direct {
    exclude = [${addresses}]
  }
}
`,
  );
  return file;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The command line and a tail of its output, for assertion messages. */
  describe(): string;
}

export interface TerraformOptions {
  binary: string;
  cliConfigFile: string;
  /** Added to every command's environment (credentials, endpoints). @default none */
  env?: Record<string, string | undefined>;
}

/** Runs terraform commands in stack directories, offline and without prompts. */
export class Terraform {
  readonly binary: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(options: TerraformOptions) {
    this.binary = options.binary;
    this.env = {
      ...process.env,
      CHECKPOINT_DISABLE: '1',
      TF_IN_AUTOMATION: '1',
      TF_INPUT: '0',
      TF_CLI_CONFIG_FILE: options.cliConfigFile,
      ...options.env,
    };
  }

  run(cwd: string, args: string[], timeoutMs = 300_000): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(this.binary, [...args, '-no-color'], {
        cwd,
        env: this.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
      child.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const exit = code ?? (signal ? 128 : 1);
        resolve({
          code: exit,
          stdout,
          stderr,
          describe: () =>
            `terraform ${args.join(' ')} in ${cwd} exited ${exit}${signal ? ` (${signal}, timeout ${timeoutMs} ms?)` : ''}\n` +
            `${stderr.trim().split('\n').slice(-40).join('\n')}\n${stdout.trim().split('\n').slice(-20).join('\n')}`,
        });
      });
    });
  }

  init(cwd: string): Promise<RunResult> {
    return this.run(cwd, ['init', '-input=false']);
  }

  validate(cwd: string): Promise<RunResult> {
    return this.run(cwd, ['validate', '-json']);
  }

  apply(cwd: string, timeoutMs = 600_000): Promise<RunResult> {
    return this.run(cwd, ['apply', '-input=false', '-auto-approve'], timeoutMs);
  }

  async outputs(cwd: string): Promise<Record<string, { value: unknown; sensitive: boolean }>> {
    const result = await this.run(cwd, ['output', '-json']);
    if (result.code !== 0) throw new Error(result.describe());
    return JSON.parse(result.stdout) as Record<string, { value: unknown; sensitive: boolean }>;
  }
}

/** AWS services the stacks call, each pointed at one endpoint (moto) by `writeAwsEndpointOverride`. */
export const AWS_SERVICES = [
  'autoscaling',
  'batch',
  'cloudwatch',
  'ec2',
  'ecr',
  'ecs',
  'elbv2',
  'iam',
  'kms',
  'logs',
  'rds',
  's3',
  'secretsmanager',
  'ssm',
  'sts',
] as const;

/**
 * A Terraform override file (merged over cdk.tf.json by terraform itself) that sends every AWS call of the
 * stack to `endpoint` and skips the checks a fake AWS cannot pass. The synthesized JSON stays untouched.
 */
export function writeAwsEndpointOverride(stackDir: string, endpoint: string): void {
  const endpoints = Object.fromEntries(AWS_SERVICES.map((service) => [service, endpoint]));
  const override = {
    provider: {
      aws: {
        skip_credentials_validation: true,
        skip_requesting_account_id: true,
        skip_metadata_api_check: 'true',
        s3_use_path_style: true,
        endpoints: [endpoints],
      },
    },
  };
  writeFileSync(join(stackDir, 'zz_endpoint_override.tf.json'), `${JSON.stringify(override, null, 2)}\n`);
}

export function readStackJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8'));
}
