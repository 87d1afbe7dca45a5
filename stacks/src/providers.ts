/**
 * The exact provider releases every stack requires. cdktf writes the prebuilt bindings' provider version
 * but an unqualified source (`aws`), which terraform and tofu resolve differently; the stacks override
 * both from here. The AWS version must match the one in the local provider mirror (/opt/tf-plugins holds
 * hashicorp/aws 5.100.0, which @cdktf/provider-aws 20.1.0 wraps), or `terraform init` fails offline.
 */
export const PINNED_PROVIDERS = {
  aws: { source: 'hashicorp/aws', version: '5.100.0' },
  nomad: { source: 'hashicorp/nomad', version: '2.5.2' },
} as const;

export type PinnedProvider = keyof typeof PINNED_PROVIDERS;

/** S3 native state locking (`use_lockfile`) needs Terraform 1.10 (OpenTofu 1.10 has it too). */
export const REQUIRED_TERRAFORM_VERSION = '>= 1.10.0';
