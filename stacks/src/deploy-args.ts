/**
 * The command line of `scripts/deploy.mjs`, parsed strictly and without side effects, so that every
 * documented command can be checked against it in a unit test (stacks/test/docs-commands.test.ts).
 */
import { parseArgs } from 'node:util';

export const DEPLOY_USAGE = `usage: npx zx scripts/deploy.mjs --env <dev|staging|prod> [--plan | --destroy | --bootstrap] [options]

  --env E                      environment (required)
  --plan                       plan every stack, apply nothing; on a fresh environment, plan the first wave
                               and name, for each later stack, the upstream outputs it waits for
  --destroy                    destroy the stacks in reverse dependency order
  --bootstrap                  create the environment's state bucket (and its KMS key) once, before any deploy
  --stacks a,b                 only these components or stack names (default: every stack of the environment)
  --engine terraform|tofu      default terraform
  --endpoint URL               send every AWS call to URL (an emulator such as moto); same as AWS_ENDPOINT_URL
  --provider-mirror DIR        install providers from this filesystem mirror only (offline machines)
  --parallelism N              stacks of one dependency wave run N at a time (default 1)
  --allow-production-destroy   with --destroy of a production environment: asks then for the environment's name
  -h, --help                   this text`;

export type DeployMode = 'apply' | 'plan' | 'destroy' | 'bootstrap';

export interface DeployArgs {
  help: boolean;
  env: string;
  mode: DeployMode;
  /** Components or stack names; undefined: every stack of the environment. */
  stacks?: string[];
  engine: 'terraform' | 'tofu';
  endpoint?: string;
  providerMirror?: string;
  parallelism: number;
  allowProductionDestroy: boolean;
}

export class DeployArgsError extends Error {
  constructor(message: string) {
    super(`${message}\n${DEPLOY_USAGE}`);
    this.name = 'DeployArgsError';
  }
}

/** Every flag the script accepts, for documentation checks. */
export const DEPLOY_FLAGS = [
  'env',
  'plan',
  'destroy',
  'bootstrap',
  'stacks',
  'engine',
  'endpoint',
  'provider-mirror',
  'parallelism',
  'allow-production-destroy',
  'help',
] as const;

/** Parses the arguments after the script's path; throws a DeployArgsError naming what is wrong. */
export function parseDeployArgs(argv: readonly string[], env: NodeJS.ProcessEnv = {}): DeployArgs {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw new DeployArgsError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (positionals.length > 0) throw new DeployArgsError(`unknown argument ${positionals.join(' ')}`);
  const base = {
    engine: 'terraform' as const,
    parallelism: 1,
    allowProductionDestroy: false,
  };
  if (values.help) return { ...base, help: true, env: '', mode: 'apply' };
  if (!values.env) throw new DeployArgsError('--env is required');
  const modes = (['plan', 'destroy', 'bootstrap'] as const).filter((m) => values[m]);
  if (modes.length > 1) throw new DeployArgsError(`choose one of ${modes.map((m) => `--${m}`).join(', ')}`);
  const engine = values.engine ?? 'terraform';
  if (engine !== 'terraform' && engine !== 'tofu') {
    throw new DeployArgsError(`--engine must be terraform or tofu (got "${engine}")`);
  }
  const endpoint = values.endpoint ?? env.AWS_ENDPOINT_URL;
  if (endpoint !== undefined && !/^https?:\/\/[^\s/]+(\/.*)?$/.test(endpoint)) {
    throw new DeployArgsError(`--endpoint must be an http(s) URL (got "${endpoint}")`);
  }
  const parallelism = values.parallelism === undefined ? 1 : Number(values.parallelism);
  if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > 8) {
    throw new DeployArgsError(`--parallelism must be a whole number from 1 to 8 (got "${values.parallelism}")`);
  }
  const mode = modes[0] ?? 'apply';
  if (values['allow-production-destroy'] && mode !== 'destroy') {
    throw new DeployArgsError('--allow-production-destroy goes with --destroy only');
  }
  const stacks = values.stacks
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (values.stacks !== undefined && stacks?.length === 0) throw new DeployArgsError('--stacks names no stack');
  return {
    help: false,
    env: values.env,
    mode,
    ...(stacks ? { stacks } : {}),
    engine,
    ...(endpoint ? { endpoint } : {}),
    ...(values['provider-mirror'] ? { providerMirror: values['provider-mirror'] } : {}),
    parallelism,
    allowProductionDestroy: values['allow-production-destroy'] ?? false,
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: true,
    options: {
      env: { type: 'string' },
      plan: { type: 'boolean' },
      destroy: { type: 'boolean' },
      bootstrap: { type: 'boolean' },
      stacks: { type: 'string' },
      engine: { type: 'string' },
      endpoint: { type: 'string' },
      'provider-mirror': { type: 'string' },
      parallelism: { type: 'string' },
      'allow-production-destroy': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
