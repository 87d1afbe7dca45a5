import { TerraformStack } from 'cdktf';
import type { IConstruct } from 'constructs';

/**
 * The provider's `default_tags` reach every taggable resource but not what those resources launch:
 * instances and volumes from a launch template, an Auto Scaling group's own `tag` blocks, the instances
 * Batch starts. Those get the stack's tags (Project, Environment, CostCenter, …) from here.
 */
export function stackTags(scope: IConstruct): Record<string, string> {
  const stack = TerraformStack.of(scope) as TerraformStack & { tags?: () => Record<string, string> };
  return stack.tags?.() ?? {};
}

/**
 * `tag` blocks of an Auto Scaling group: its own tags, propagated to the instances, and the stack's on the
 * group itself (the instances get those from the launch template).
 */
export function autoScalingTags(
  scope: IConstruct,
  own: Record<string, string>,
): { key: string; value: string; propagateAtLaunch: boolean }[] {
  const inherited = Object.entries(stackTags(scope)).filter(([key]) => !(key in own));
  return [
    ...Object.entries(own).map(([key, value]) => ({ key, value, propagateAtLaunch: true })),
    ...inherited.map(([key, value]) => ({ key, value, propagateAtLaunch: false })),
  ];
}
