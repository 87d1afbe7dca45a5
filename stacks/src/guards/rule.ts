/**
 * Guard rules in the cdk-nag mould: one rule per file, each a pure function from one block of synthesized
 * Terraform JSON (exactly what terraform or tofu will read, overrides included) to a verdict. A rule never
 * sees constructs, so it cannot be fooled by a construct that is configured one way and overridden another.
 *
 * Fail closed: a value the rule cannot read at synth time (a `${...}` expression, a reference to another
 * resource, a value from remote state) counts as non-compliant wherever the rule needs the value itself.
 */

export type JsonObject = { readonly [key: string]: unknown };

/** One unit a rule can judge. */
export type SynthBlock =
  | { readonly kind: 'resource'; readonly type: string; readonly name: string; readonly config: JsonObject }
  | { readonly kind: 'data'; readonly type: string; readonly name: string; readonly config: JsonObject }
  | { readonly kind: 'provider'; readonly type: string; readonly alias?: string; readonly config: JsonObject }
  | { readonly kind: 'required-provider'; readonly name: string; readonly requirement: unknown };

export type RuleResult =
  | { readonly status: 'compliant' }
  | { readonly status: 'not-applicable' }
  | { readonly status: 'non-compliant'; readonly findings: readonly string[] };

export interface GuardRule {
  /** Stable id shown in every finding, e.g. `AF-ENCRYPTED-STORAGE`. */
  readonly id: string;
  /** What the rule protects against, one sentence. */
  readonly description: string;
  /** How to fix a finding, one sentence. */
  readonly remedy: string;
  readonly evaluate: (block: SynthBlock) => RuleResult;
}

export const COMPLIANT: RuleResult = { status: 'compliant' };
export const NOT_APPLICABLE: RuleResult = { status: 'not-applicable' };

export function nonCompliant(...findings: string[]): RuleResult {
  return { status: 'non-compliant', findings };
}

/** Collects findings while checking several attributes of one block. */
export function verdict(findings: readonly string[]): RuleResult {
  return findings.length === 0 ? COMPLIANT : { status: 'non-compliant', findings };
}

/** True when the value holds a Terraform expression, i.e. is only known at plan or apply time. */
export function isUnresolved(value: unknown): boolean {
  if (typeof value === 'string') return value.includes('${');
  if (Array.isArray(value)) return value.some(isUnresolved);
  if (value !== null && typeof value === 'object') return Object.values(value).some(isUnresolved);
  return false;
}

/** Terraform JSON writes booleans either as JSON booleans or as "true"/"false" strings (e.g. ebs.encrypted). */
export function isLiteralTrue(value: unknown): boolean {
  return value === true || value === 'true';
}

export function isLiteralFalse(value: unknown): boolean {
  return value === false || value === 'false';
}

/**
 * A nested block as a list: Terraform JSON allows one object or a list of objects for a block, and cdktf
 * writes either depending on the schema.
 */
export function blocks(value: unknown): JsonObject[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.filter((v): v is JsonObject => v !== null && typeof v === 'object' && !Array.isArray(v));
}

export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

export function address(block: SynthBlock): string {
  switch (block.kind) {
    case 'resource':
      return `${block.type}.${block.name}`;
    case 'data':
      return `data.${block.type}.${block.name}`;
    case 'provider':
      return block.alias ? `provider.${block.type}.${block.alias}` : `provider.${block.type}`;
    case 'required-provider':
      return `terraform.required_providers.${block.name}`;
  }
}

/** One field (`source`, `version`) of a `required_providers` entry, or undefined when it is not an object. */
export function requirementField(requirement: unknown, field: string): unknown {
  return requirement !== null && typeof requirement === 'object'
    ? (requirement as Record<string, unknown>)[field]
    : undefined;
}
