import { DbInstance } from '@cdktf/provider-aws/lib/db-instance/index.js';
import { publicDatabase } from '../../src/guards/public-database.ts';
import { findingsOf, fullSynth, guardedStack, resource, statusOf } from '../support/guarded-stack.ts';

const rule = publicDatabase;

describe('AF-PUBLIC-DATABASE', () => {
  it('passes a private database through the synth (compliant)', () => {
    const stack = guardedStack([rule]);
    new DbInstance(stack, 'db', { engine: 'postgres', instanceClass: 'db.t4g.micro', publiclyAccessible: false });
    expect(() => fullSynth(stack)).not.toThrow();
  });

  it('fails the synth on a publicly accessible database (non-compliant)', () => {
    const stack = guardedStack([rule]);
    new DbInstance(stack, 'db', { engine: 'postgres', instanceClass: 'db.t4g.micro', publiclyAccessible: true });
    expect(() => fullSynth(stack)).toThrow(
      /\[AF-PUBLIC-DATABASE\] aws_db_instance\.db: publicly_accessible must be a literal false \(got true\)/,
    );
  });

  it('accepts a left-out flag only where the provider defaults to private', () => {
    expect(statusOf(rule.evaluate(resource('aws_db_instance', {})))).toBe('compliant');
    expect(findingsOf(rule.evaluate(resource('aws_redshift_cluster', {})))).toEqual([
      'publicly_accessible is left out and aws_redshift_cluster defaults to public; set it to false',
    ]);
  });

  it('fails closed on an expression', () => {
    expect(
      statusOf(rule.evaluate(resource('aws_rds_cluster_instance', { publicly_accessible: `\${var.public}` }))),
    ).toBe('non-compliant');
  });

  it('ignores everything that is not a database', () => {
    expect(statusOf(rule.evaluate(resource('aws_instance', { associate_public_ip_address: true })))).toBe(
      'not-applicable',
    );
  });
});
