/**
 * What `scripts/deploy.mjs --bootstrap` applies once per environment before any stack: the S3 bucket that
 * holds the stacks' state (versioned, encrypted, private) and, where the environment names a KMS alias
 * for its state objects, that key. Plain Terraform JSON with local state (in `.airfleet/bootstrap/`), because
 * it must exist before the state it stores; `prevent_destroy` keeps a destroy from ever reaching it.
 */
import type { EnvironmentConfig } from './config/schema.ts';
import { PINNED_PROVIDERS, REQUIRED_TERRAFORM_VERSION } from './providers.ts';

export class BootstrapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BootstrapError';
  }
}

/** The bootstrap configuration of an environment with S3 state; throws for one with local state. */
export function bootstrapConfig(env: EnvironmentConfig, statePath: string): Record<string, unknown> {
  const state = env.state;
  if (state.backend !== 's3') {
    throw new BootstrapError(
      `${env.name} keeps its state locally (state.backend = 'local'): there is nothing to bootstrap`,
    );
  }
  const createsKey = state.kmsKeyId?.startsWith('alias/') ?? false;
  const tags = {
    Project: 'airfleet',
    Environment: env.name,
    Stack: `${env.name}-bootstrap`,
    ManagedBy: 'terraform',
    ...env.tags,
  };
  const keep = { lifecycle: { prevent_destroy: true } };
  const sseKey = createsKey ? '${aws_kms_key.state.arn}' : state.kmsKeyId;
  const resource: Record<string, unknown> = {
    aws_s3_bucket: { state: { bucket: state.bucket, ...keep } },
    aws_s3_bucket_versioning: {
      state: { bucket: '${aws_s3_bucket.state.id}', versioning_configuration: { status: 'Enabled' } },
    },
    aws_s3_bucket_server_side_encryption_configuration: {
      state: {
        bucket: '${aws_s3_bucket.state.id}',
        rule: [
          {
            apply_server_side_encryption_by_default: {
              sse_algorithm: 'aws:kms',
              ...(sseKey ? { kms_master_key_id: sseKey } : {}),
            },
            bucket_key_enabled: true,
          },
        ],
      },
    },
    aws_s3_bucket_public_access_block: {
      state: {
        bucket: '${aws_s3_bucket.state.id}',
        block_public_acls: true,
        block_public_policy: true,
        ignore_public_acls: true,
        restrict_public_buckets: true,
      },
    },
  };
  if (createsKey) {
    resource.aws_kms_key = {
      state: {
        description: `airfleet ${env.name}: Terraform state objects`,
        enable_key_rotation: true,
        deletion_window_in_days: 30,
        ...keep,
      },
    };
    resource.aws_kms_alias = { state: { name: state.kmsKeyId, target_key_id: '${aws_kms_key.state.key_id}' } };
  }
  return {
    terraform: {
      required_version: REQUIRED_TERRAFORM_VERSION,
      required_providers: { aws: { ...PINNED_PROVIDERS.aws } },
      backend: { local: { path: statePath } },
    },
    provider: {
      aws: [
        {
          region: state.region,
          allowed_account_ids: [env.aws.accountId],
          default_tags: [{ tags }],
        },
      ],
    },
    resource,
    output: {
      state_bucket: { value: '${aws_s3_bucket.state.id}' },
      ...(createsKey ? { state_key_arn: { value: '${aws_kms_key.state.arn}' } } : {}),
    },
  };
}
