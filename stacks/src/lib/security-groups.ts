import { SecurityGroup } from '@cdktf/provider-aws/lib/security-group/index.js';
import { VpcSecurityGroupEgressRule } from '@cdktf/provider-aws/lib/vpc-security-group-egress-rule/index.js';
import { VpcSecurityGroupIngressRule } from '@cdktf/provider-aws/lib/vpc-security-group-ingress-rule/index.js';
import type { Construct } from 'constructs';

/**
 * Security groups with their rules as separate resources (`aws_vpc_security_group_*_rule`), so a rule can
 * live in the stack that needs it (the database stack admits the compute groups of other stacks by
 * reference) without the group fighting over inline rules.
 */
export function securityGroup(
  scope: Construct,
  id: string,
  props: { name: string; description: string; vpcId: string },
) {
  return new SecurityGroup(scope, id, {
    // A prefix, not a fixed name: create_before_destroy makes the replacement while the old group exists,
    // and EC2 refuses two groups of one name in a VPC (InvalidGroup.Duplicate).
    namePrefix: `${props.name}-`,
    description: props.description,
    vpcId: props.vpcId,
    tags: { Name: props.name },
    // Rules are separate resources; an inline block would make Terraform delete them on the next apply.
    lifecycle: { createBeforeDestroy: true },
  });
}

/** Outbound to anywhere: image pulls, AWS APIs without an endpoint, package mirrors. Ingress stays closed. */
export function allowAllEgress(scope: Construct, id: string, securityGroupId: string): VpcSecurityGroupEgressRule {
  return new VpcSecurityGroupEgressRule(scope, id, {
    securityGroupId,
    description: 'All outbound traffic',
    ipProtocol: '-1',
    cidrIpv4: '0.0.0.0/0',
  });
}

export interface IngressProps {
  securityGroupId: string;
  description: string;
  fromPort: number;
  /** @default fromPort */
  toPort?: number;
  /** Exactly one of `cidr` and `sourceSecurityGroupId`. */
  cidr?: string;
  sourceSecurityGroupId?: string;
}

export function allowIngress(scope: Construct, id: string, props: IngressProps): VpcSecurityGroupIngressRule {
  if ((props.cidr === undefined) === (props.sourceSecurityGroupId === undefined)) {
    throw new Error(`ingress rule ${id} needs exactly one of cidr and sourceSecurityGroupId`);
  }
  return new VpcSecurityGroupIngressRule(scope, id, {
    securityGroupId: props.securityGroupId,
    description: props.description,
    ipProtocol: 'tcp',
    fromPort: props.fromPort,
    toPort: props.toPort ?? props.fromPort,
    ...(props.cidr !== undefined ? { cidrIpv4: props.cidr } : {}),
    ...(props.sourceSecurityGroupId !== undefined ? { referencedSecurityGroupId: props.sourceSecurityGroupId } : {}),
  });
}
