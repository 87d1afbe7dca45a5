import { relative, resolve } from 'node:path';
import { AwsProvider } from '@cdktf/provider-aws/lib/provider/index.js';
import { Aspects, LocalBackend, S3Backend, TerraformStack } from 'cdktf';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from './config/schema.ts';
import { GuardAspect } from './guards/aspect.ts';
import { partitionOf } from './lib/iam.ts';
import { PINNED_PROVIDERS, type PinnedProvider, REQUIRED_TERRAFORM_VERSION } from './providers.ts';

export const COMPONENTS = [
  'network',
  'registry',
  'data',
  'batch',
  'nomad-clients',
  'executor',
  'worker-pools',
  'nomad',
] as const;
export type Component = (typeof COMPONENTS)[number];

/** Where state goes, independent of any one stack. */
export interface StateOptions {
  /** The app's output directory; local state paths are written relative to each stack's directory in it. */
  outdir: string;
  /**
   * Keep every stack's state in this directory, whatever the environment configures: for tests and
   * throwaway runs (e.g. applying to moto). @default the environment's `state` setting; local state goes
   * to `.airfleet/state` next to the output directory
   */
  localStateDir?: string;
}

export interface AirfleetStackProps {
  env: EnvironmentConfig;
  component: Component;
  state: StateOptions;
  /** Configure the AWS provider. The nomad stack talks to Nomad only. @default true */
  aws?: boolean;
}

/**
 * Base of every stack: the `<env>-<component>` name, its own state (S3 with encryption and a lock file,
 * or local for dev), pinned providers, default tags, and the guard aspect that fails the synth on any
 * insecure block.
 */
export class AirfleetStack extends TerraformStack {
  readonly env: EnvironmentConfig;
  readonly component: Component;
  readonly stackName: string;

  constructor(scope: Construct, props: AirfleetStackProps) {
    const stackName = `${props.env.name}-${props.component}`;
    super(scope, stackName);
    this.env = props.env;
    this.component = props.component;
    this.stackName = stackName;

    this.configureState(props.state);
    this.addOverride('terraform.required_version', REQUIRED_TERRAFORM_VERSION);
    if (props.aws !== false) {
      const { region, accountId } = props.env.aws;
      new AwsProvider(this, 'aws', {
        region,
        allowedAccountIds: [accountId],
        defaultTags: [{ tags: this.tags() }],
      });
      this.pinProvider('aws');
    }
    Aspects.of(this).add(new GuardAspect());
  }

  /** ARN partition of the environment's region (`aws`, `aws-cn`, `aws-us-gov`). */
  get partition(): string {
    return partitionOf(this.env.aws.region);
  }

  /** The AWS account: the one the environment pins (the provider refuses any other). */
  get accountId(): string {
    return this.env.aws.accountId;
  }

  /** `arn:<partition>:<service>:<region>:<account>:<resource>` in this environment. */
  arn(service: string, resource: string): string {
    return `arn:${this.partition}:${service}:${this.env.aws.region}:${this.accountId}:${resource}`;
  }

  /** Tags on every AWS resource of the stack (provider default_tags), plus the environment's own. */
  tags(): Record<string, string> {
    return {
      Project: 'airfleet',
      Environment: this.env.name,
      Stack: this.stackName,
      ManagedBy: 'cdktf',
      ...this.env.tags,
    };
  }

  /** Name prefix for AWS resources: unique per environment when environments share an account. */
  resourceName(...parts: string[]): string {
    return ['airfleet', this.env.name, ...parts].join('-');
  }

  /** Requires the provider with a fully qualified source and one exact version (see providers.ts). */
  pinProvider(name: PinnedProvider): void {
    this.addOverride(`terraform.required_providers.${name}`, { ...PINNED_PROVIDERS[name] });
  }

  private configureState(options: StateOptions): void {
    const state = this.env.state;
    if (options.localStateDir !== undefined || state.backend === 'local') {
      // By default in .airfleet/state next to the output directory (the repository root for cdktf.out;
      // gitignored). Written relative to the stack's working directory (<outdir>/stacks/<stack>), so the
      // synthesized JSON does not depend on where the repository is checked out; remote state lookups
      // between local stacks use the same relative path, which holds because stack directories are siblings.
      const dir = resolve(options.localStateDir ?? resolve(options.outdir, '..', '.airfleet', 'state'));
      const stackDir = resolve(options.outdir, 'stacks', this.stackName);
      new LocalBackend(this, { path: relative(stackDir, resolve(dir, `${this.stackName}.tfstate`)) });
      return;
    }
    new S3Backend(this, {
      bucket: state.bucket,
      key: `${state.keyPrefix}/${this.stackName}.tfstate`,
      region: state.region,
      encrypt: true,
      ...(state.kmsKeyId ? { kmsKeyId: state.kmsKeyId } : {}),
    });
    // S3 native locking (a .tflock object next to the state) instead of a DynamoDB table; cdktf 0.21's
    // S3Backend has no property for it yet.
    this.addOverride('terraform.backend.s3.use_lockfile', true);
  }
}
