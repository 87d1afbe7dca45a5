import {
  blocks,
  describe,
  type GuardRule,
  isLiteralFalse,
  isLiteralTrue,
  isUnresolved,
  type JsonObject,
  NOT_APPLICABLE,
  type RuleResult,
  type SynthBlock,
  verdict,
} from './rule.ts';

/**
 * Storage must be encrypted at rest. Only resource types whose provider default is *unencrypted* (or
 * depends on an account setting Terraform cannot see) are judged; for those an absent flag is a finding.
 * CloudWatch log groups, ECR repositories and S3 buckets are always encrypted by AWS and are not judged,
 * except that an ECR repository may not ask for anything weaker than AES256.
 */
export const encryptedStorage: GuardRule = {
  id: 'AF-ENCRYPTED-STORAGE',
  description: 'Databases, volumes, file systems and caches are encrypted at rest.',
  remedy: 'Set the encryption flag to a literal true (and a KMS key where the service takes one).',
  evaluate(block: SynthBlock): RuleResult {
    if (block.kind !== 'resource') return NOT_APPLICABLE;
    const c = block.config;
    switch (block.type) {
      case 'aws_db_instance':
      case 'aws_rds_cluster':
      case 'aws_docdb_cluster':
      case 'aws_neptune_cluster':
        return verdict(requireTrue(c, 'storage_encrypted'));
      case 'aws_ebs_volume':
      case 'aws_efs_file_system':
        return verdict(requireTrue(c, 'encrypted'));
      case 'aws_elasticache_replication_group':
        return verdict(requireTrue(c, 'at_rest_encryption_enabled'));
      case 'aws_redshift_cluster':
        return verdict(requireTrue(c, 'encrypted'));
      case 'aws_launch_template':
        return verdict(launchTemplateFindings(c));
      case 'aws_instance':
        return verdict(instanceFindings(c));
      case 'aws_batch_compute_environment':
        return verdict(batchFindings(c));
      case 'aws_sqs_queue':
        return verdict(
          isLiteralFalse(c['sqs_managed_sse_enabled']) && c['kms_master_key_id'] === undefined
            ? [
                'sqs_managed_sse_enabled is false and no kms_master_key_id is set: messages would be stored in plain text',
              ]
            : [],
        );
      case 'aws_ecr_repository':
        return verdict(ecrFindings(c));
      default:
        return NOT_APPLICABLE;
    }
  },
};

function requireTrue(config: JsonObject, key: string, where = key): string[] {
  const value = config[key];
  if (isLiteralTrue(value)) return [];
  if (isUnresolved(value))
    return [`${where} is only known at apply time (${describe(value)}); it must be a literal true`];
  return [`${where} must be true (got ${describe(value)})`];
}

/**
 * Every EBS mapping must be encrypted, and there must be at least one: without a mapping the root volume
 * follows the AMI's snapshot and the account's encrypt-by-default setting, neither visible at synth time.
 */
function launchTemplateFindings(config: JsonObject): string[] {
  const mappings = config['block_device_mappings'];
  if (isUnresolved(mappings) && !Array.isArray(mappings)) {
    return [`block_device_mappings is only known at apply time (${describe(mappings)})`];
  }
  const ebsMappings = blocks(mappings).filter((m) => m['ebs'] !== undefined);
  if (ebsMappings.length === 0) {
    return [
      'declares no EBS block device mapping, so the root volume is encrypted only if the AMI or account says so; map the root device with ebs.encrypted = true',
    ];
  }
  return ebsMappings.flatMap((mapping, i) =>
    blocks(mapping['ebs']).flatMap((ebs) =>
      requireTrue(ebs, 'encrypted', `block_device_mappings[${i}] (${describe(mapping['device_name'])}).ebs.encrypted`),
    ),
  );
}

function instanceFindings(config: JsonObject): string[] {
  const root = blocks(config['root_block_device']);
  const findings =
    root.length === 0
      ? ['declares no root_block_device, so the root volume is encrypted only if the AMI or account says so']
      : root.flatMap((r) => requireTrue(r, 'encrypted', 'root_block_device.encrypted'));
  blocks(config['ebs_block_device']).forEach((device, i) => {
    findings.push(...requireTrue(device, 'encrypted', `ebs_block_device[${i}].encrypted`));
  });
  return findings;
}

/** EC2 and Spot compute environments launch instances; their volumes are judged through a launch template. */
function batchFindings(config: JsonObject): string[] {
  return blocks(config['compute_resources']).flatMap((resources) => {
    const type = resources['type'];
    if (type === 'FARGATE' || type === 'FARGATE_SPOT') return [];
    if (isUnresolved(type) || (type !== 'EC2' && type !== 'SPOT')) {
      return [`compute_resources.type is ${describe(type)}; only EC2, SPOT, FARGATE and FARGATE_SPOT can be judged`];
    }
    const template = blocks(resources['launch_template']);
    return template.length === 0
      ? [
          `compute_resources of type ${type} have no launch_template, so instance volumes use the ECS-optimized AMI defaults; attach a launch template with encrypted volumes`,
        ]
      : [];
  });
}

function ecrFindings(config: JsonObject): string[] {
  return blocks(config['encryption_configuration']).flatMap((enc) => {
    const type = enc['encryption_type'];
    if (type === undefined || type === 'AES256' || type === 'KMS' || type === 'KMS_DSSE') return [];
    return [`encryption_configuration.encryption_type must be AES256 or KMS (got ${describe(type)})`];
  });
}
