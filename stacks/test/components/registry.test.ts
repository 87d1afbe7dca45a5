import { EcrRepository } from '@cdktf/provider-aws/lib/ecr-repository/index.js';
import { lifecyclePolicy } from '../../src/components/registry.ts';
import { resources, synthEnvironment } from '../support/synth.ts';

const dev = synthEnvironment('dev').get('registry');

describe('registry stack', () => {
  it('has one repository per image, immutable, scanned on push, KMS-encrypted', () => {
    const names = Object.values(resources(dev.tf, 'aws_ecr_repository')).map((r) => r['name']);
    expect(names.sort()).toEqual(['airfleet-dev/executor', 'airfleet-dev/task-runner', 'airfleet-dev/worker']);
    expect(dev.json).toHaveResourceWithProperties(EcrRepository, {
      image_tag_mutability: 'IMMUTABLE',
      image_scanning_configuration: { scan_on_push: true },
      encryption_configuration: [{ encryption_type: 'KMS' }],
      force_delete: false,
    });
  });

  it('bounds storage with a lifecycle policy per repository', () => {
    const policies = Object.values(resources(dev.tf, 'aws_ecr_lifecycle_policy'));
    expect(policies).toHaveLength(3);
    expect(JSON.parse(String(policies[0]!['policy']))).toEqual(lifecyclePolicy(50, 7));
  });

  it('expires untagged images first and keeps the newest N of all', () => {
    const { rules } = lifecyclePolicy(20, 3);
    expect(rules.map((r) => [r.rulePriority, r.selection.tagStatus])).toEqual([
      [1, 'untagged'],
      [2, 'any'],
    ]);
    expect(rules[1]!.selection).toMatchObject({ countType: 'imageCountMoreThan', countNumber: 20 });
  });

  it('passes every guard', () => {
    expect(dev.errors).toEqual([]);
  });
});
