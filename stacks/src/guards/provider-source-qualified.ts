import {
  COMPLIANT,
  describe,
  type GuardRule,
  NOT_APPLICABLE,
  nonCompliant,
  type RuleResult,
  requirementField,
  type SynthBlock,
} from './rule.ts';

/** `namespace/type` or `hostname/namespace/type`, e.g. `hashicorp/aws` or `registry.terraform.io/hashicorp/aws`. */
const QUALIFIED = /^([a-z0-9][a-z0-9.-]*[a-z0-9](:\d+)?\/)?[a-z0-9][a-z0-9-]*\/[a-z0-9][a-z0-9-]*$/i;

/**
 * Provider sources must name their namespace. An unqualified `aws` is read as `hashicorp/aws` by terraform
 * but may resolve differently elsewhere (tofu's registry, a mirror); `hashicorp/aws` means the same thing
 * to both engines, which is what makes the output usable by terraform and tofu alike.
 */
export const providerSourceQualified: GuardRule = {
  id: 'AF-PROVIDER-SOURCE',
  description: 'Every required provider has a fully qualified source such as hashicorp/aws.',
  remedy: 'Pin the provider through PINNED_PROVIDERS in stacks/src/providers.ts (source "hashicorp/<name>").',
  evaluate(block: SynthBlock): RuleResult {
    if (block.kind !== 'required-provider') return NOT_APPLICABLE;
    const source = requirementField(block.requirement, 'source');
    if (typeof source === 'string' && QUALIFIED.test(source)) return COMPLIANT;
    return nonCompliant(
      `provider "${block.name}" has source ${describe(source)}; it must be fully qualified, e.g. "hashicorp/${block.name}"`,
    );
  },
};
