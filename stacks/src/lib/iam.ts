import { IamInstanceProfile } from '@cdktf/provider-aws/lib/iam-instance-profile/index.js';
import { IamRole } from '@cdktf/provider-aws/lib/iam-role/index.js';
import { IamRolePolicy } from '@cdktf/provider-aws/lib/iam-role-policy/index.js';
import { IamRolePolicyAttachment } from '@cdktf/provider-aws/lib/iam-role-policy-attachment/index.js';
import type { ITerraformDependable } from 'cdktf';
import { Construct } from 'constructs';

export interface PolicyStatement {
  Sid: string;
  Effect?: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
  /** Resource policies only (KMS key policies). */
  Principal?: { AWS?: string; Service?: string };
}

/** An IAM policy document as JSON; cdktf tokens inside strings survive JSON.stringify and resolve later. */
export function policyDocument(statements: readonly PolicyStatement[]): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: statements.map((s) => ({ Effect: 'Allow', ...s })),
  });
}

export function trustPolicy(service: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { Service: service }, Action: 'sts:AssumeRole' }],
  });
}

/** The ARN partition of a region, decided at synth time so ARNs stay literals where possible. */
export function partitionOf(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.includes('-gov-')) return 'aws-us-gov';
  if (region.includes('-iso')) return region.includes('-isob-') ? 'aws-iso-b' : 'aws-iso';
  return 'aws';
}

export interface ServiceRoleProps {
  name: string;
  description: string;
  /** Service principal allowed to assume the role, e.g. `ecs-tasks.amazonaws.com`. */
  assumedBy: string;
  /** AWS managed policies by name, e.g. `service-role/AWSBatchServiceRole`. @default none */
  managedPolicies?: string[];
  /** The role's own permissions, one inline policy. @default none */
  statements?: PolicyStatement[];
  /** Also create an instance profile (EC2 roles). @default false */
  instanceProfile?: boolean;
  /** ARN partition. @default 'aws' */
  partition?: string;
}

/**
 * A role a service assumes, with exactly the permissions listed: AWS managed policies only where AWS
 * maintains the service's needs (Batch, ECS on EC2), inline statements scoped to named resources elsewhere.
 */
export class ServiceRole extends Construct {
  readonly role: IamRole;
  readonly instanceProfile?: IamInstanceProfile;
  /** Attachments and the inline policy: what a consumer should depend on before using the role. */
  readonly grants: ITerraformDependable[] = [];

  constructor(scope: Construct, id: string, props: ServiceRoleProps) {
    super(scope, id);
    this.role = new IamRole(this, 'role', {
      name: props.name,
      description: props.description,
      assumeRolePolicy: trustPolicy(props.assumedBy),
    });
    const partition = props.partition ?? 'aws';
    for (const policy of props.managedPolicies ?? []) {
      this.grants.push(
        new IamRolePolicyAttachment(this, `managed-${policy.replace(/[^A-Za-z0-9]/g, '-')}`, {
          role: this.role.name,
          policyArn: `arn:${partition}:iam::aws:policy/${policy}`,
        }),
      );
    }
    if (props.statements && props.statements.length > 0) {
      this.grants.push(
        new IamRolePolicy(this, 'policy', {
          name: 'least-privilege',
          role: this.role.name,
          policy: policyDocument(props.statements),
        }),
      );
    }
    if (props.instanceProfile) {
      this.instanceProfile = new IamInstanceProfile(this, 'instance-profile', {
        name: props.name,
        role: this.role.name,
      });
    }
  }

  get arn(): string {
    return this.role.arn;
  }
}
