import { providerSourceQualified } from '../../src/guards/provider-source-qualified.ts';
import { findingsOf, fullSynth, guardedStack, statusOf } from '../support/guarded-stack.ts';

const rule = providerSourceQualified;
const required = (name: string, requirement: unknown) => ({ kind: 'required-provider' as const, name, requirement });

describe('AF-PROVIDER-SOURCE', () => {
  it('passes a fully qualified source through the synth (compliant)', () => {
    expect(() => fullSynth(guardedStack([rule]))).not.toThrow();
  });

  it("fails the synth on cdktf's default, unqualified source (non-compliant)", () => {
    const stack = guardedStack([rule]);
    stack.addOverride('terraform.required_providers.aws.source', 'aws');
    expect(() => fullSynth(stack)).toThrow(
      /\[AF-PROVIDER-SOURCE\] terraform\.required_providers\.aws: provider "aws" has source "aws"; it must be fully qualified, e\.g\. "hashicorp\/aws"/,
    );
  });

  it('accepts namespace/type and host/namespace/type', () => {
    expect(statusOf(rule.evaluate(required('aws', { source: 'hashicorp/aws', version: '5.100.0' })))).toBe('compliant');
    expect(statusOf(rule.evaluate(required('aws', { source: 'registry.opentofu.org/hashicorp/aws' })))).toBe(
      'compliant',
    );
  });

  it('refuses a provider used without any requirement', () => {
    expect(findingsOf(rule.evaluate(required('random', undefined)))).toEqual([
      'provider "random" has source nothing; it must be fully qualified, e.g. "hashicorp/random"',
    ]);
  });
});
