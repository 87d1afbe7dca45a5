import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AwsProvider } from '@cdktf/provider-aws/lib/provider/index.js';
import { NomadProvider } from '@cdktf/provider-nomad/lib/provider/index.js';
import { TerraformStack, Testing } from 'cdktf';
import { COMPONENTS } from '../src/airfleet-stack.ts';
import { buildApp } from '../src/app.ts';
import { PINNED_PROVIDERS } from '../src/providers.ts';
import { type SynthesizedEnvironment, synthEnvironment } from './support/synth.ts';

const synthesized: Record<string, SynthesizedEnvironment> = {
  dev: synthEnvironment('dev'),
  staging: synthEnvironment('staging'),
  prod: synthEnvironment('prod'),
};
const all = Object.values(synthesized).flatMap((env) => [...env.byName.values()]);

describe('environments', () => {
  it('synthesize the whole fleet as <env>-<component> stacks', () => {
    const names = (env: string) => [...synthesized[env]!.byName.keys()].sort();
    const expected = (env: string, components: readonly string[]) => components.map((c) => `${env}-${c}`).sort();
    expect(names('dev')).toEqual(expected('dev', COMPONENTS));
    // staging and prod run the executor on Nomad, so they have no executor (ECS) stack
    expect(names('staging')).toEqual(
      expected(
        'staging',
        COMPONENTS.filter((c) => c !== 'executor'),
      ),
    );
    expect(names('prod')).toEqual(
      expected(
        'prod',
        COMPONENTS.filter((c) => c !== 'executor'),
      ),
    );
  });

  it('keep remote state in S3, encrypted, with a lock file, one key per stack; dev may stay local', () => {
    for (const { stack, tf } of all) {
      const backend = tf.terraform.backend;
      if (stack.env.name === 'dev') {
        expect(backend).toEqual({ local: { path: `../../../.airfleet/state/${stack.stackName}.tfstate` } });
        continue;
      }
      expect(backend['s3']).toEqual({
        bucket: `airfleet-terraform-state-${stack.env.name}`,
        key: `airfleet/${stack.stackName}.tfstate`,
        region: 'eu-west-1',
        encrypt: true,
        use_lockfile: true,
        ...(stack.env.name === 'prod' ? { kms_key_id: 'alias/airfleet-terraform-state' } : {}),
      });
    }
  });

  it('read other stacks through their remote state in the same bucket', () => {
    const batch = synthesized['staging']!.get('batch').tf;
    const lookups = Object.values(batch.data?.['terraform_remote_state'] ?? {});
    expect(lookups.map((l) => (l['config'] as Record<string, unknown>)['key']).sort()).toEqual([
      'airfleet/staging-network.tfstate',
      'airfleet/staging-registry.tfstate',
    ]);
    expect(lookups[0]).toMatchObject({
      backend: 's3',
      config: { bucket: 'airfleet-terraform-state-staging', encrypt: true },
    });
  });

  it('pin fully qualified providers, matching the versions the prebuilt bindings wrap', () => {
    const aws = new AwsProvider(new TerraformStack(Testing.app(), 'a'), 'aws', { region: 'eu-west-1' });
    const nomad = new NomadProvider(new TerraformStack(Testing.app(), 'n'), 'nomad', { address: 'https://n:4646' });
    expect(aws.terraformGeneratorMetadata?.providerVersion).toBe(PINNED_PROVIDERS.aws.version);
    expect(nomad.terraformGeneratorMetadata?.providerVersion).toBe(PINNED_PROVIDERS.nomad.version);
    for (const { stack, tf } of all) {
      const expected = stack.component === 'nomad' ? { nomad: PINNED_PROVIDERS.nomad } : { aws: PINNED_PROVIDERS.aws };
      expect(tf.terraform.required_providers).toEqual(expected);
      expect(tf.terraform['required_version']).toBe('>= 1.10.0');
    }
  });

  it('tag every AWS resource through the provider, and pin prod to its account', () => {
    const network = synthesized['prod']!.get('network').json;
    expect(network).toHaveProviderWithProperties(AwsProvider, {
      region: 'eu-west-1',
      allowed_account_ids: ['210987654321'],
      default_tags: [
        {
          tags: expect.objectContaining({
            Project: 'airfleet',
            Environment: 'prod',
            Stack: 'prod-network',
            ManagedBy: 'cdktf',
            CostCenter: 'airfleet-prod',
          }),
        },
      ],
    });
  });

  it('pass every guard and every validation', () => {
    for (const { stack, errors } of all)
      expect({ stack: stack.stackName, errors }).toEqual({ stack: stack.stackName, errors: [] });
  });

  it('record the dependencies deploys follow', () => {
    const deps = (env: string, component: string) =>
      synthesized[env]!.get(component)
        .stack.dependencies.map((d) => d.node.id)
        .sort();
    expect(deps('dev', 'network')).toEqual([]);
    expect(deps('dev', 'data')).toEqual(['dev-network']);
    expect(deps('dev', 'executor')).toEqual(['dev-batch', 'dev-data', 'dev-network', 'dev-registry']);
    expect(deps('dev', 'worker-pools')).toEqual(['dev-executor', 'dev-network']);
    expect(deps('staging', 'nomad')).toEqual([
      'staging-batch',
      'staging-data',
      'staging-nomad-clients',
      'staging-registry',
    ]);
  });

  it('can put every stack on local state for throwaway runs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'airfleet-state-'));
    const env = synthEnvironment('staging', { localStateDir: dir });
    const batch = env.get('batch').tf;
    expect(Object.keys(batch.terraform.backend)).toEqual(['local']);
    expect(String(batch.terraform.backend['local']!['path'])).toMatch(/staging-batch\.tfstate$/);
    const lookup = Object.values(batch.data?.['terraform_remote_state'] ?? {})[0]!;
    expect(lookup['backend']).toBe('local');
  });

  it('write every stack and the manifest when the app synthesizes', () => {
    const outdir = mkdtempSync(join(tmpdir(), 'airfleet-app-'));
    buildApp({ outdir }).app.synth();
    const manifest = JSON.parse(readFileSync(join(outdir, 'manifest.json'), 'utf8')) as {
      stacks: Record<string, { synthesizedStackPath: string; dependencies: string[] }>;
    };
    expect(Object.keys(manifest.stacks)).toHaveLength(22);
    for (const [name, entry] of Object.entries(manifest.stacks)) {
      expect(existsSync(join(outdir, entry.synthesizedStackPath))).toBe(true);
      expect(name).toMatch(/^(dev|staging|prod)-[a-z-]+$/);
    }
    expect(manifest.stacks['prod-worker-pools']!.dependencies.sort()).toEqual(['prod-network', 'prod-nomad']);
  });
});
