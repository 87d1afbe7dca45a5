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

/** An exact version: `5.100.0` or `= 5.100.0` (no ranges, no `~>`, no pre-release wildcards). */
const EXACT = /^=?\s*\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/;

/**
 * Provider versions must be exact: a range lets `init` pick a different provider on another machine (or
 * none at all offline, where the local mirror holds exactly one version).
 */
export const providerVersionPinned: GuardRule = {
  id: 'AF-PROVIDER-VERSION',
  description: 'Every required provider is pinned to one exact version.',
  remedy: 'Pin the provider through PINNED_PROVIDERS in stacks/src/providers.ts (an exact x.y.z version).',
  evaluate(block: SynthBlock): RuleResult {
    if (block.kind !== 'required-provider') return NOT_APPLICABLE;
    const version = requirementField(block.requirement, 'version');
    if (typeof version === 'string' && EXACT.test(version.trim())) return COMPLIANT;
    return nonCompliant(
      `provider "${block.name}" has version ${describe(version)}; it must be one exact version such as "5.100.0"`,
    );
  },
};
