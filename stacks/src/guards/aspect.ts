import {
  Annotations,
  type IAspect,
  TerraformDataSource,
  TerraformProvider,
  TerraformResource,
  TerraformStack,
} from 'cdktf';
import type { IConstruct } from 'constructs';
import { ALL_RULES } from './all-rules.ts';
import { synthBlocks } from './blocks.ts';
import { address, type GuardRule } from './rule.ts';

export interface GuardFinding {
  readonly ruleId: string;
  /** Terraform address of the offending block, e.g. `aws_db_instance.database`. */
  readonly address: string;
  readonly message: string;
}

/** Runs the rules over one synthesized stack (the JSON terraform reads). Pure: no constructs involved. */
export function guardFindings(stackJson: unknown, rules: readonly GuardRule[] = ALL_RULES): GuardFinding[] {
  const findings: GuardFinding[] = [];
  for (const block of synthBlocks(stackJson)) {
    for (const rule of rules) {
      const result = rule.evaluate(block);
      if (result.status !== 'non-compliant') continue;
      for (const finding of result.findings) {
        findings.push({ ruleId: rule.id, address: address(block), message: `${finding}. ${rule.remedy}` });
      }
    }
  }
  return findings;
}

/**
 * Fails the synth when a stack breaks a guard rule. It judges the stack's final Terraform JSON (after
 * overrides), then pins each finding as an error annotation on the construct that produced the block, so
 * the message carries the construct path. cdktf aborts the synth on error annotations (`cdktf synth`
 * prints them first); there is deliberately no way to suppress a finding.
 */
export class GuardAspect implements IAspect {
  readonly rules: readonly GuardRule[];

  constructor(rules: readonly GuardRule[] = ALL_RULES) {
    this.rules = rules;
  }

  visit(node: IConstruct): void {
    if (!TerraformStack.isStack(node)) return;
    const findings = guardFindings(node.toTerraform(), this.rules);
    if (findings.length === 0) return;
    const owners = elementsByAddress(node);
    for (const finding of findings) {
      const owner = owners.get(finding.address) ?? node;
      Annotations.of(owner).addError(`[${finding.ruleId}] ${finding.address}: ${finding.message}`);
    }
  }
}

function elementsByAddress(stack: TerraformStack): Map<string, IConstruct> {
  const owners = new Map<string, IConstruct>();
  for (const child of stack.node.findAll()) {
    if (TerraformResource.isTerraformResource(child)) {
      owners.set(`${child.terraformResourceType}.${child.friendlyUniqueId}`, child);
    } else if (TerraformDataSource.isTerraformDataSource(child)) {
      owners.set(`data.${child.terraformResourceType}.${child.friendlyUniqueId}`, child);
    } else if (TerraformProvider.isTerraformProvider(child)) {
      const alias = child.alias;
      owners.set(
        alias ? `provider.${child.terraformResourceType}.${alias}` : `provider.${child.terraformResourceType}`,
        child,
      );
    }
  }
  return owners;
}
