import {
  COMPLIANT,
  describe,
  type GuardRule,
  isLiteralFalse,
  NOT_APPLICABLE,
  nonCompliant,
  type RuleResult,
  type SynthBlock,
} from './rule.ts';

/** Resource types with `publicly_accessible`, and what the provider does when it is left out. */
const DATABASES: Readonly<Record<string, { defaultPublic: boolean }>> = {
  aws_db_instance: { defaultPublic: false },
  aws_rds_cluster_instance: { defaultPublic: false },
  aws_redshift_cluster: { defaultPublic: true },
  aws_redshiftserverless_workgroup: { defaultPublic: false },
  aws_dms_replication_instance: { defaultPublic: false },
};

/**
 * No database may get a public endpoint. Left out is fine where the provider's documented default is
 * private; an expression is a finding, because nothing guarantees it evaluates to false.
 */
export const publicDatabase: GuardRule = {
  id: 'AF-PUBLIC-DATABASE',
  description: 'No database has a publicly reachable endpoint.',
  remedy: 'Set publicly_accessible = false and reach the database from inside the VPC.',
  evaluate(block: SynthBlock): RuleResult {
    if (block.kind !== 'resource') return NOT_APPLICABLE;
    const spec = DATABASES[block.type];
    if (!spec) return NOT_APPLICABLE;
    const value = block.config['publicly_accessible'];
    if (value === undefined) {
      return spec.defaultPublic
        ? nonCompliant(`publicly_accessible is left out and ${block.type} defaults to public; set it to false`)
        : COMPLIANT;
    }
    if (isLiteralFalse(value)) return COMPLIANT;
    return nonCompliant(`publicly_accessible must be a literal false (got ${describe(value)})`);
  },
};
