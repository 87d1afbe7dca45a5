import { Vpc } from '@cdktf/provider-aws/lib/vpc/index.js';
import { TerraformStack, Testing } from 'cdktf';
import { guardFindings } from '../../src/guards/aspect.ts';
import { providerVersionPinned } from '../../src/guards/provider-version-pinned.ts';
import { fullSynth, guardedStack, statusOf } from '../support/guarded-stack.ts';

const rule = providerVersionPinned;
const required = (version: unknown) => ({
  kind: 'required-provider' as const,
  name: 'aws',
  requirement: { source: 'hashicorp/aws', version },
});

describe('AF-PROVIDER-VERSION', () => {
  it('passes an exact version through the synth (compliant)', () => {
    const stack = guardedStack([rule]);
    new Vpc(stack, 'vpc', { cidrBlock: '10.0.0.0/16' });
    expect(() => fullSynth(stack)).not.toThrow();
  });

  it('fails the synth on a version range (non-compliant)', () => {
    const stack = guardedStack([rule]);
    stack.addOverride('terraform.required_providers.aws.version', '~> 5.0');
    expect(() => fullSynth(stack)).toThrow(
      /\[AF-PROVIDER-VERSION\] terraform\.required_providers\.aws: provider "aws" has version "~> 5\.0"; it must be one exact version/,
    );
  });

  it('accepts x.y.z and = x.y.z only', () => {
    expect(['5.100.0', '= 5.100.0', '1.2.3-beta1'].map((v) => statusOf(rule.evaluate(required(v))))).toEqual([
      'compliant',
      'compliant',
      'compliant',
    ]);
    expect(['>= 5.0', '5.100', '~> 5.100.0', undefined].map((v) => statusOf(rule.evaluate(required(v))))).toEqual([
      'non-compliant',
      'non-compliant',
      'non-compliant',
      'non-compliant',
    ]);
  });

  it('catches a provider whose resources are used without any requirement at all', () => {
    const stack = new TerraformStack(Testing.app(), 'bare');
    stack.addOverride('resource.random_id.x', { byte_length: 4 });
    const findings = guardFindings(JSON.parse(Testing.synth(stack)), [rule]);
    expect(findings.map((f) => f.address)).toEqual(['terraform.required_providers.random']);
  });
});
