import { EcrLifecyclePolicy } from '@cdktf/provider-aws/lib/ecr-lifecycle-policy/index.js';
import { EcrRepository } from '@cdktf/provider-aws/lib/ecr-repository/index.js';
import { TerraformOutput } from 'cdktf';
import type { Construct } from 'constructs';
import { AirfleetStack, type StateOptions } from '../airfleet-stack.ts';
import type { EnvironmentConfig } from '../config/schema.ts';

/** The project's images: the executor service, the pull-worker agent, and the container tasks run in. */
export const IMAGES = ['executor', 'worker', 'task-runner'] as const;
export type ImageName = (typeof IMAGES)[number];

export interface RegistryStackProps {
  env: EnvironmentConfig;
  state: StateOptions;
}

/** `<namespace>/<image>`, e.g. `airfleet-dev/worker`. Pure, so boot scripts can name images without tokens. */
export function repositoryName(env: EnvironmentConfig, image: ImageName): string {
  return `${env.registry.namespace ?? `airfleet-${env.name}`}/${image}`;
}

/** `<account>.dkr.ecr.<region>.amazonaws.com`: the environment's ECR registry, where every repository lives. */
export function registryHost(env: EnvironmentConfig): string {
  return `${env.aws.accountId}.dkr.ecr.${env.aws.region}.amazonaws.com`;
}

/**
 * One ECR repository per image. Tags are immutable (a tag names one build forever, so a rollback redeploys
 * exactly what ran before), every push is scanned, and a lifecycle policy bounds storage: untagged images
 * expire after a few days, and only the newest N images are kept.
 */
export class RegistryStack extends AirfleetStack {
  readonly repositories: Record<ImageName, EcrRepository>;

  constructor(scope: Construct, props: RegistryStackProps) {
    super(scope, { ...props, component: 'registry' });
    const { keepImages, untaggedExpiryDays } = this.env.registry;
    const entries = IMAGES.map((image) => {
      const repository = new EcrRepository(this, `repository-${image}`, {
        name: repositoryName(this.env, image),
        imageTagMutability: 'IMMUTABLE',
        imageScanningConfiguration: { scanOnPush: true },
        encryptionConfiguration: [{ encryptionType: 'KMS' }],
        // Never delete a repository that still holds images; an empty one goes with `destroy`.
        forceDelete: false,
      });
      new EcrLifecyclePolicy(this, `repository-${image}-lifecycle`, {
        repository: repository.name,
        policy: JSON.stringify(lifecyclePolicy(keepImages, untaggedExpiryDays)),
      });
      new TerraformOutput(this, `${image}_repository_url`, { value: repository.repositoryUrl });
      return [image, repository] as const;
    });
    this.repositories = Object.fromEntries(entries) as Record<ImageName, EcrRepository>;
  }
}

/** ECR applies the rule with the lowest priority first; `any` must come last. */
export function lifecyclePolicy(keepImages: number, untaggedExpiryDays: number) {
  return {
    rules: [
      {
        rulePriority: 1,
        description: `Expire untagged images after ${untaggedExpiryDays} days`,
        selection: {
          tagStatus: 'untagged',
          countType: 'sinceImagePushed',
          countUnit: 'days',
          countNumber: untaggedExpiryDays,
        },
        action: { type: 'expire' },
      },
      {
        rulePriority: 2,
        description: `Keep the newest ${keepImages} images`,
        selection: { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: keepImages },
        action: { type: 'expire' },
      },
    ],
  };
}
