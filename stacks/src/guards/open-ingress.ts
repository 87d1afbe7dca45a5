import { isAnyAddress } from '../lib/cidr.ts';
import {
  blocks,
  describe,
  type GuardRule,
  isUnresolved,
  NOT_APPLICABLE,
  type RuleResult,
  type SynthBlock,
  verdict,
} from './rule.ts';

/**
 * No security group admits the whole internet (0.0.0.0/0 or ::/0, or any other /0). Every CIDR must be a
 * literal: a CIDR from a variable or another stack could be /0 and is a finding. Ingress from another
 * security group (by reference) is what the stacks use instead.
 */
export const openIngress: GuardRule = {
  id: 'AF-OPEN-INGRESS',
  description: 'No security group accepts traffic from 0.0.0.0/0 or ::/0.',
  remedy: 'Allow a known CIDR or, better, another security group by reference.',
  evaluate(block: SynthBlock): RuleResult {
    if (block.kind !== 'resource') return NOT_APPLICABLE;
    const c = block.config;
    switch (block.type) {
      case 'aws_security_group':
      case 'aws_default_security_group': {
        const ingress = c['ingress'];
        if (ingress === undefined) return NOT_APPLICABLE;
        if (!Array.isArray(ingress) && isUnresolved(ingress)) {
          return verdict([`ingress is only known at apply time (${describe(ingress)})`]);
        }
        return verdict(
          blocks(ingress).flatMap((rule, i) => [
            ...cidrFindings(rule['cidr_blocks'], `ingress[${i}].cidr_blocks`),
            ...cidrFindings(rule['ipv6_cidr_blocks'], `ingress[${i}].ipv6_cidr_blocks`),
          ]),
        );
      }
      case 'aws_security_group_rule': {
        const type = c['type'];
        if (type === 'egress') return NOT_APPLICABLE;
        if (type !== 'ingress')
          return verdict([`type must be a literal "ingress" or "egress" (got ${describe(type)})`]);
        return verdict([
          ...cidrFindings(c['cidr_blocks'], 'cidr_blocks'),
          ...cidrFindings(c['ipv6_cidr_blocks'], 'ipv6_cidr_blocks'),
        ]);
      }
      case 'aws_vpc_security_group_ingress_rule':
        return verdict([...cidrFindings(c['cidr_ipv4'], 'cidr_ipv4'), ...cidrFindings(c['cidr_ipv6'], 'cidr_ipv6')]);
      default:
        return NOT_APPLICABLE;
    }
  },
};

function cidrFindings(value: unknown, field: string): string[] {
  if (value === undefined || value === null) return [];
  const list: unknown[] = Array.isArray(value) ? value : [value];
  return list.flatMap((cidr) => {
    if (typeof cidr !== 'string' || isUnresolved(cidr)) {
      return [`${field} holds ${describe(cidr)}, which is only known at apply time; it could be 0.0.0.0/0`];
    }
    return isAnyAddress(cidr) ? [`${field} admits ${cidr}, i.e. the whole internet`] : [];
  });
}
