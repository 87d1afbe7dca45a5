import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import type { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import type { Worker } from '../../store/workers.ts';
import type { DriverContext } from './context.ts';
import type { PoolDriver } from './driver.ts';
import type { AwsDriverConfig } from './driver-config.ts';

/** The metric the stacks' target tracking policy follows (stacks/src/lib/executor-permissions.ts). */
export const BACKLOG_METRIC = { namespace: 'Airfleet', name: 'BacklogPerInstance' } as const;

export class AwsDriverError extends Error {
  override name = 'AwsDriverError';
}

/**
 * backlog slots / max(1, instances in service): at 0 instances the value is the whole backlog, never a
 * division by zero (no data, and no alarm) nor 0 (nothing to do).
 */
export function backlogPerInstance(backlogSlots: number, inService: number): number {
  return Math.max(0, backlogSlots) / Math.max(1, inService);
}

/**
 * A pool as an EC2 Auto Scaling group that scales itself: target tracking on `Airfleet/BacklogPerInstance`
 * (dimensions environment and queue, published here every pass) adds and removes instances, busy workers
 * protect themselves from scale-in (worker/scale-in-protection.ts) and a termination lifecycle hook drains a
 * worker before its instance goes (stacks/src/components/worker-pools.ts). Target tracking multiplies the
 * current capacity, so it cannot leave 0: from 0, and only from 0, this driver sets the desired capacity
 * itself (to what the backlog needs, within the bounds); from then on target tracking has the group.
 */
export class AwsDriver implements PoolDriver {
  readonly kind = 'aws';
  readonly scaleIn = 'platform' as const;
  private readonly config: AwsDriverConfig;
  private readonly ctx: DriverContext;
  private clients: Promise<Sdk> | undefined;

  constructor(config: AwsDriverConfig, ctx: DriverContext) {
    this.config = config;
    this.ctx = ctx;
  }

  /** The AWS SDK is loaded on first use: a service without an aws pool never carries it. */
  private sdk(): Promise<Sdk> {
    this.clients ??= Promise.all([import('@aws-sdk/client-auto-scaling'), import('@aws-sdk/client-cloudwatch')]).then(
      ([autoscaling, cloudwatch]) => {
        const client = this.config.region ? { region: this.config.region } : {};
        return {
          autoscaling: new autoscaling.AutoScalingClient(client),
          cloudwatch: new cloudwatch.CloudWatchClient(client),
          DescribeAutoScalingGroupsCommand: autoscaling.DescribeAutoScalingGroupsCommand,
          SetDesiredCapacityCommand: autoscaling.SetDesiredCapacityCommand,
          PutMetricDataCommand: cloudwatch.PutMetricDataCommand,
        };
      },
    );
    return this.clients;
  }

  private async group(): Promise<{ desired: number; inService: number; max: number }> {
    const { autoscaling, DescribeAutoScalingGroupsCommand } = await this.sdk();
    const out = await autoscaling.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [this.config.autoScalingGroup] }),
    );
    const group = out.AutoScalingGroups?.[0];
    if (!group) {
      throw new AwsDriverError(
        `Auto Scaling group '${this.config.autoScalingGroup}' does not exist (region ${await autoscaling.config.region()}): ` +
          'check the pool driver autoScalingGroup against the stacks (airfleet-<env>-workers-<queue>)',
      );
    }
    return {
      desired: group.DesiredCapacity ?? 0,
      inService: (group.Instances ?? []).filter((i) => i.LifecycleState === 'InService').length,
      max: group.MaxSize ?? 0,
    };
  }

  async observe(): Promise<{ target: number; running: number }> {
    const g = await this.group();
    return { target: g.desired, running: g.inService };
  }

  async publish(backlog: { queuedSlots: number; runningSlots: number; queue: string }): Promise<void> {
    const { inService } = await this.group();
    const { cloudwatch, PutMetricDataCommand } = await this.sdk();
    await cloudwatch.send(
      new PutMetricDataCommand({
        Namespace: BACKLOG_METRIC.namespace,
        MetricData: [
          {
            MetricName: BACKLOG_METRIC.name,
            Dimensions: [
              { Name: 'environment', Value: this.config.environment },
              { Name: 'queue', Value: backlog.queue },
            ],
            Value: backlogPerInstance(backlog.queuedSlots + backlog.runningSlots, inService),
            Unit: 'Count',
          },
        ],
      }),
    );
  }

  async scaleTo(n: number): Promise<void> {
    const g = await this.group();
    if (g.desired > 0) return; // target tracking has the group
    const desired = Math.min(n, g.max);
    const { autoscaling, SetDesiredCapacityCommand } = await this.sdk();
    await autoscaling.send(
      new SetDesiredCapacityCommand({
        AutoScalingGroupName: this.config.autoScalingGroup,
        DesiredCapacity: desired,
        HonorCooldown: false,
      }),
    );
    this.ctx.logger.info({ group: this.config.autoScalingGroup, desired }, 'Auto Scaling group out of zero');
  }

  async remove(workers: readonly Worker[]): Promise<void> {
    // Never called: scale-in belongs to the group (scaleIn = 'platform').
    throw new AwsDriverError(
      `the aws driver does not remove workers (${workers.map((w) => w.name).join(', ')}): the group scales in itself`,
    );
  }

  async close(): Promise<void> {
    if (!this.clients) return;
    const { autoscaling, cloudwatch } = await this.clients;
    autoscaling.destroy();
    cloudwatch.destroy();
  }
}

interface Sdk {
  autoscaling: AutoScalingClient;
  cloudwatch: CloudWatchClient;
  DescribeAutoScalingGroupsCommand: typeof import('@aws-sdk/client-auto-scaling').DescribeAutoScalingGroupsCommand;
  SetDesiredCapacityCommand: typeof import('@aws-sdk/client-auto-scaling').SetDesiredCapacityCommand;
  PutMetricDataCommand: typeof import('@aws-sdk/client-cloudwatch').PutMetricDataCommand;
}
