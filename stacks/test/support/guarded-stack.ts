import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AwsProvider } from '@cdktf/provider-aws/lib/provider/index.js';
import { Aspects, TerraformStack, Testing } from 'cdktf';
import { GuardAspect } from '../../src/guards/aspect.ts';
import type { GuardRule, RuleResult, SynthBlock } from '../../src/guards/rule.ts';
import { PINNED_PROVIDERS } from '../../src/providers.ts';

/**
 * A bare stack with a pinned AWS provider and the guard aspect, for one rule at a time. `Testing.fullSynth`
 * runs the real synthesizer, which throws on the aspect's error annotations the way `cdktf synth` fails.
 */
export function guardedStack(rules?: readonly GuardRule[]): TerraformStack {
  // cdktf's CLI sets this to print annotations itself; the tests want the synthesizer to throw.
  delete process.env.CDKTF_CONTINUE_SYNTH_ON_ERROR_ANNOTATIONS;
  const stack = new TerraformStack(Testing.app(), 'guarded');
  new AwsProvider(stack, 'aws', { region: 'eu-west-1' });
  stack.addOverride('terraform.required_providers.aws', { ...PINNED_PROVIDERS.aws });
  Aspects.of(stack).add(new GuardAspect(rules));
  return stack;
}

/** Runs the full synth; returns the stack's JSON file when it passes. */
export function fullSynth(stack: TerraformStack): string {
  const outdir = Testing.fullSynth(stack);
  const file = join(outdir, 'stacks', stack.node.id, 'cdk.tf.json');
  if (!existsSync(file)) throw new Error(`no synthesized stack at ${file}`);
  return file;
}

export function resource(type: string, config: Record<string, unknown>, name = 'subject'): SynthBlock {
  return { kind: 'resource', type, name, config };
}

export function statusOf(result: RuleResult): string {
  return result.status;
}

export function findingsOf(result: RuleResult): readonly string[] {
  return result.status === 'non-compliant' ? result.findings : [];
}
