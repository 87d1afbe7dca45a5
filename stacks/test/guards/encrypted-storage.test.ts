import { DbInstance } from '@cdktf/provider-aws/lib/db-instance/index.js';
import { EbsVolume } from '@cdktf/provider-aws/lib/ebs-volume/index.js';
import { LaunchTemplate } from '@cdktf/provider-aws/lib/launch-template/index.js';
import { encryptedStorage } from '../../src/guards/encrypted-storage.ts';
import { findingsOf, fullSynth, guardedStack, resource, statusOf } from '../support/guarded-stack.ts';

const rule = encryptedStorage;
const db = { engine: 'postgres', instance_class: 'db.t4g.micro', allocated_storage: 20 };

describe('AF-ENCRYPTED-STORAGE', () => {
  describe('synth', () => {
    it('passes an encrypted database (compliant)', () => {
      const stack = guardedStack([rule]);
      new DbInstance(stack, 'db', { engine: 'postgres', instanceClass: 'db.t4g.micro', storageEncrypted: true });
      expect(() => fullSynth(stack)).not.toThrow();
    });

    it('fails the synth on an unencrypted volume (non-compliant)', () => {
      const stack = guardedStack([rule]);
      new EbsVolume(stack, 'scratch', { availabilityZone: 'eu-west-1a', size: 10 });
      expect(() => fullSynth(stack)).toThrow(
        /\[guarded\/scratch\] \[AF-ENCRYPTED-STORAGE\] aws_ebs_volume\.scratch: encrypted must be true \(got nothing\)/,
      );
    });

    it('fails the synth on a launch template without an encrypted root mapping (non-compliant)', () => {
      const stack = guardedStack([rule]);
      new LaunchTemplate(stack, 'lt', { name: 'lt', imageId: 'ami-12345678' });
      expect(() => fullSynth(stack)).toThrow(/declares no EBS block device mapping/);
    });
  });

  describe('rule', () => {
    it('is compliant with literal true, in either JSON spelling', () => {
      expect(statusOf(rule.evaluate(resource('aws_db_instance', { ...db, storage_encrypted: true })))).toBe(
        'compliant',
      );
      const lt = { block_device_mappings: [{ device_name: '/dev/xvda', ebs: { encrypted: 'true' } }] };
      expect(statusOf(rule.evaluate(resource('aws_launch_template', lt)))).toBe('compliant');
    });

    it('is non-compliant when the flag is absent or false', () => {
      expect(findingsOf(rule.evaluate(resource('aws_db_instance', db)))).toEqual([
        'storage_encrypted must be true (got nothing)',
      ]);
      expect(findingsOf(rule.evaluate(resource('aws_rds_cluster', { storage_encrypted: false })))).toEqual([
        'storage_encrypted must be true (got false)',
      ]);
    });

    it('fails closed on a value only known at apply time', () => {
      const result = rule.evaluate(resource('aws_efs_file_system', { encrypted: `\${var.encrypt}` }));
      expect(findingsOf(result)).toEqual([
        `encrypted is only known at apply time ("\${var.encrypt}"); it must be a literal true`,
      ]);
    });

    it('judges every EBS mapping of a launch template and ignores non-EBS ones', () => {
      const lt = {
        block_device_mappings: [
          { device_name: '/dev/xvda', ebs: { encrypted: 'true' } },
          { device_name: '/dev/xvdb', ebs: { volume_size: 100 } },
          { device_name: '/dev/sdc', virtual_name: 'ephemeral0' },
        ],
      };
      expect(findingsOf(rule.evaluate(resource('aws_launch_template', lt)))).toEqual([
        'block_device_mappings[1] ("/dev/xvdb").ebs.encrypted must be true (got nothing)',
      ]);
    });

    it('requires a launch template on EC2 Batch capacity but not on Fargate', () => {
      const ec2 = { compute_resources: { type: 'SPOT', max_vcpus: 4 } };
      expect(statusOf(rule.evaluate(resource('aws_batch_compute_environment', ec2)))).toBe('non-compliant');
      const fargate = { compute_resources: { type: 'FARGATE', max_vcpus: 4 } };
      expect(statusOf(rule.evaluate(resource('aws_batch_compute_environment', fargate)))).toBe('compliant');
    });

    it('does not judge storage AWS always encrypts', () => {
      expect(statusOf(rule.evaluate(resource('aws_cloudwatch_log_group', { name: 'x' })))).toBe('not-applicable');
      expect(statusOf(rule.evaluate(resource('aws_ecr_repository', { name: 'x' })))).toBe('compliant');
    });
  });
});
