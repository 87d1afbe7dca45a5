import { SecurityGroup } from '@cdktf/provider-aws/lib/security-group/index.js';
import { VpcSecurityGroupIngressRule } from '@cdktf/provider-aws/lib/vpc-security-group-ingress-rule/index.js';
import { openIngress } from '../../src/guards/open-ingress.ts';
import { findingsOf, fullSynth, guardedStack, resource, statusOf } from '../support/guarded-stack.ts';

const rule = openIngress;

describe('AF-OPEN-INGRESS', () => {
  it('passes ingress from a private CIDR or another group (compliant)', () => {
    const stack = guardedStack([rule]);
    const sg = new SecurityGroup(stack, 'sg', { name: 'sg', vpcId: 'vpc-1' });
    new VpcSecurityGroupIngressRule(stack, 'from-vpc', {
      securityGroupId: sg.id,
      ipProtocol: 'tcp',
      fromPort: 443,
      toPort: 443,
      cidrIpv4: '10.0.0.0/16',
    });
    new VpcSecurityGroupIngressRule(stack, 'from-group', {
      securityGroupId: sg.id,
      ipProtocol: 'tcp',
      fromPort: 5432,
      toPort: 5432,
      referencedSecurityGroupId: sg.id,
    });
    expect(() => fullSynth(stack)).not.toThrow();
  });

  it('fails the synth on 0.0.0.0/0 and ::/0 (non-compliant)', () => {
    const stack = guardedStack([rule]);
    new SecurityGroup(stack, 'web', {
      name: 'web',
      ingress: [{ fromPort: 443, toPort: 443, protocol: 'tcp', cidrBlocks: ['0.0.0.0/0'], ipv6CidrBlocks: ['::/0'] }],
    });
    expect(() => fullSynth(stack)).toThrow(
      /aws_security_group\.web: ingress\[0\]\.cidr_blocks admits 0\.0\.0\.0\/0, i\.e\. the whole internet[\s\S]*ingress\[0\]\.ipv6_cidr_blocks admits ::\/0/,
    );
  });

  it('judges every ingress resource type and leaves egress alone', () => {
    expect(findingsOf(rule.evaluate(resource('aws_vpc_security_group_ingress_rule', { cidr_ipv6: '::/0' })))).toEqual([
      'cidr_ipv6 admits ::/0, i.e. the whole internet',
    ]);
    expect(
      statusOf(rule.evaluate(resource('aws_security_group_rule', { type: 'ingress', cidr_blocks: ['0.0.0.0/0'] }))),
    ).toBe('non-compliant');
    expect(
      statusOf(rule.evaluate(resource('aws_security_group_rule', { type: 'egress', cidr_blocks: ['0.0.0.0/0'] }))),
    ).toBe('not-applicable');
    expect(statusOf(rule.evaluate(resource('aws_vpc_security_group_egress_rule', { cidr_ipv4: '0.0.0.0/0' })))).toBe(
      'not-applicable',
    );
  });

  it('fails closed on CIDRs only known at apply time, and on any /0', () => {
    expect(
      findingsOf(rule.evaluate(resource('aws_vpc_security_group_ingress_rule', { cidr_ipv4: `\${var.cidr}` }))),
    ).toEqual([`cidr_ipv4 holds "\${var.cidr}", which is only known at apply time; it could be 0.0.0.0/0`]);
    expect(statusOf(rule.evaluate(resource('aws_vpc_security_group_ingress_rule', { cidr_ipv4: '10.0.0.0/0' })))).toBe(
      'non-compliant',
    );
    expect(
      statusOf(rule.evaluate(resource('aws_security_group_rule', { type: `\${var.t}`, cidr_blocks: ['10.0.0.0/8'] }))),
    ).toBe('non-compliant');
  });
});
