import { BootstrapError, bootstrapConfig } from '../src/bootstrap.ts';
import { environments } from '../src/config/environments/index.ts';
import { parseEnvironments } from '../src/config/validate.ts';
import { DeployArgsError, parseDeployArgs } from '../src/deploy-args.ts';
import {
  DeployPlanError,
  dependencyWaves,
  deploymentOrder,
  describeOutput,
  environmentsIn,
  unselectedDependencies,
  unselectedDependents,
  upstreamReads,
} from '../src/deploy-plan.ts';

const manifest = {
  stacks: {
    'dev-worker-pools': { dependencies: ['dev-executor', 'dev-network'] },
    'dev-executor': { dependencies: ['dev-network', 'dev-data', 'dev-registry'] },
    'dev-data': { dependencies: ['dev-network'] },
    'dev-network': { dependencies: [] },
    'dev-registry': {},
    'prod-network': { dependencies: [] },
  },
};

describe('deploy plan', () => {
  it('orders an environment so every stack comes after what it reads', () => {
    const order = deploymentOrder(manifest, 'dev');
    expect(order).toHaveLength(5);
    const before = (a: string, b: string) => order.indexOf(`dev-${a}`) < order.indexOf(`dev-${b}`);
    expect(before('network', 'data')).toBe(true);
    expect(before('data', 'executor')).toBe(true);
    expect(before('registry', 'executor')).toBe(true);
    expect(before('executor', 'worker-pools')).toBe(true);
  });

  it('restricts to the selected components or stack names, keeping the order', () => {
    expect(deploymentOrder(manifest, 'dev', ['worker-pools', 'dev-data'])).toEqual(['dev-data', 'dev-worker-pools']);
    expect(unselectedDependencies(manifest, ['dev-data', 'dev-worker-pools'])).toEqual(['dev-network', 'dev-executor']);
  });

  it('explains unknown environments, unknown stacks and cycles', () => {
    expect(() => deploymentOrder(manifest, 'qa')).toThrow(
      'No stacks for environment "qa" in the synthesized app; environments: dev, prod',
    );
    expect(() => deploymentOrder(manifest, 'dev', ['batch'])).toThrow(
      '"batch" is not a stack of dev; choose from: worker-pools, executor, data, network, registry',
    );
    const cyclic = { stacks: { 'x-a': { dependencies: ['x-b'] }, 'x-b': { dependencies: ['x-a'] } } };
    expect(() => deploymentOrder(cyclic, 'x')).toThrow(
      new DeployPlanError('Stacks depend on each other in a cycle: x-a -> x-b -> x-a'),
    );
    expect(environmentsIn(manifest)).toEqual(['dev', 'prod']);
  });

  it('groups the order into waves that only read from earlier waves', () => {
    const order = deploymentOrder(manifest, 'dev');
    expect(dependencyWaves(manifest, order)).toEqual([
      ['dev-network', 'dev-registry'],
      ['dev-data'],
      ['dev-executor'],
      ['dev-worker-pools'],
    ]);
    expect(dependencyWaves(manifest, ['dev-data', 'dev-worker-pools'])).toEqual([['dev-data', 'dev-worker-pools']]);
  });

  it('names the deployed dependents a destroy of a subset would leave reading nothing', () => {
    expect(unselectedDependents(manifest, 'dev', ['dev-data'])).toEqual(['dev-executor']);
    expect(unselectedDependents(manifest, 'dev', ['dev-data', 'dev-executor', 'dev-worker-pools'])).toEqual([]);
  });

  it('finds the upstream outputs a stack reads through remote state, and what they hold', () => {
    const ref = (stack: string, output: string) =>
      `\${data.terraform_remote_state.cross-stack-reference-input-${stack}.outputs.${output}}`;
    const data = {
      resource: { aws_db_subnet_group: { db: { subnet_ids: [ref('dev-network', 'b'), ref('dev-network', 'a')] } } },
      locals: { key: ref('dev-registry', 'k') },
    };
    expect(upstreamReads(data)).toEqual(
      new Map([
        ['dev-network', ['a', 'b']],
        ['dev-registry', ['k']],
      ]),
    );
    const network = { output: { a: { value: '${aws_vpc.vpc.id}' } } };
    expect(describeOutput(network, 'a')).toBe('aws_vpc.vpc.id');
    expect(describeOutput(network, 'zz')).toBe('zz');
  });
});

describe('deploy command line', () => {
  it('parses every mode and option', () => {
    expect(parseDeployArgs(['--env', 'dev'])).toMatchObject({ env: 'dev', mode: 'apply', engine: 'terraform' });
    expect(
      parseDeployArgs([
        '--env=prod',
        '--destroy',
        '--allow-production-destroy',
        '--stacks',
        'data, batch',
        '--engine',
        'tofu',
        '--parallelism',
        '2',
        '--provider-mirror',
        '/opt/tf-plugins',
      ]),
    ).toEqual({
      help: false,
      env: 'prod',
      mode: 'destroy',
      stacks: ['data', 'batch'],
      engine: 'tofu',
      providerMirror: '/opt/tf-plugins',
      parallelism: 2,
      allowProductionDestroy: true,
    });
    expect(parseDeployArgs(['--env', 'dev', '--plan'], { AWS_ENDPOINT_URL: 'http://127.0.0.1:5000' })).toMatchObject({
      mode: 'plan',
      endpoint: 'http://127.0.0.1:5000',
    });
    expect(parseDeployArgs(['--env', 'dev', '--bootstrap', '--endpoint', 'http://h:1'])).toMatchObject({
      mode: 'bootstrap',
      endpoint: 'http://h:1',
    });
  });

  it.each([
    [['--plan'], '--env is required'],
    [['--env', 'dev', '--plan', '--destroy'], 'choose one of --plan, --destroy'],
    [['--env', 'dev', '--engine', 'pulumi'], '--engine must be terraform or tofu (got "pulumi")'],
    [['--env', 'dev', '--endpoint', 'localhost:5000'], '--endpoint must be an http(s) URL (got "localhost:5000")'],
    [['--env', 'dev', '--parallelism', '0'], '--parallelism must be a whole number from 1 to 8 (got "0")'],
    [['--env', 'dev', '--allow-production-destroy'], '--allow-production-destroy goes with --destroy only'],
    [['--env', 'dev', '--endpiont', 'x'], "Unknown option '--endpiont'"],
    [['--env', 'dev', 'staging'], 'unknown argument staging'],
  ])('refuses %j: %s', (argv, message) => {
    expect(() => parseDeployArgs(argv)).toThrow(DeployArgsError);
    expect(() => parseDeployArgs(argv)).toThrow(message);
  });
});

describe('bootstrap', () => {
  const env = (name: string) => parseEnvironments(environments).find((e) => e.name === name)!;

  it('creates the state bucket (versioned, KMS-encrypted, private) and the alias key, kept from destroys', () => {
    const config = bootstrapConfig(env('prod'), '/state/prod.tfstate') as {
      provider: { aws: [{ allowed_account_ids: string[] }] };
      resource: Record<string, Record<string, Record<string, unknown>>>;
    };
    const r = config.resource;
    expect(r.aws_s3_bucket!.state).toEqual({
      bucket: 'airfleet-terraform-state-prod',
      lifecycle: { prevent_destroy: true },
    });
    expect(r.aws_s3_bucket_versioning!.state!.versioning_configuration).toEqual({ status: 'Enabled' });
    expect(JSON.stringify(r.aws_s3_bucket_server_side_encryption_configuration)).toContain(
      '"kms_master_key_id":"${aws_kms_key.state.arn}"',
    );
    expect(r.aws_s3_bucket_public_access_block!.state).toMatchObject({
      block_public_acls: true,
      restrict_public_buckets: true,
    });
    expect(r.aws_kms_key!.state).toMatchObject({ enable_key_rotation: true, lifecycle: { prevent_destroy: true } });
    expect(r.aws_kms_alias!.state!.name).toBe('alias/airfleet-terraform-state');
    expect(config.provider.aws[0].allowed_account_ids).toEqual(['210987654321']);
  });

  it('makes no key where the state uses the bucket default, and nothing for local state', () => {
    const staging = bootstrapConfig(env('staging'), '/s') as { resource: Record<string, unknown> };
    expect(Object.keys(staging.resource)).not.toContain('aws_kms_key');
    expect(() => bootstrapConfig(env('dev'), '/s')).toThrow(BootstrapError);
  });
});
