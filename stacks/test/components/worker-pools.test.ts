import { AutoscalingGroup } from '@cdktf/provider-aws/lib/autoscaling-group/index.js';
import { AutoscalingLifecycleHook } from '@cdktf/provider-aws/lib/autoscaling-lifecycle-hook/index.js';
import { AutoscalingPolicy } from '@cdktf/provider-aws/lib/autoscaling-policy/index.js';
import { SsmParameter } from '@cdktf/provider-aws/lib/ssm-parameter/index.js';
import { environments } from '../../src/config/environments/index.ts';
import { resources, synthEnvironment, userData } from '../support/synth.ts';

const staging = synthEnvironment('staging').get('worker-pools');
const dev = synthEnvironment('dev').get('worker-pools');

describe('worker-pools stack', () => {
  it('has one Auto Scaling group per queue, its instance types as mixed instances overrides', () => {
    const groups = Object.values(resources(staging.tf, 'aws_autoscaling_group'));
    expect(groups.map((g) => g['name']).sort()).toEqual([
      'airfleet-staging-workers-default',
      'airfleet-staging-workers-etl',
    ]);
    const overrides = (name: string) => {
      const group = groups.find((g) => g['name'] === name)!;
      const policy = group['mixed_instances_policy'] as { launch_template: { override: { instance_type: string }[] } };
      return policy.launch_template.override.map((o) => o.instance_type);
    };
    expect(overrides('airfleet-staging-workers-default')).toEqual(['m7i.large', 'm6i.large']); // as configured: On-Demand takes them in this order
    expect(overrides('airfleet-staging-workers-etl')).toEqual(['c7i.xlarge']);
    // No group names its own instance type: the overrides decide, so the template has none.
    for (const group of groups) expect(group).not.toHaveProperty('launch_template');
    for (const template of Object.values(resources(staging.tf, 'aws_launch_template'))) {
      expect(template).not.toHaveProperty('instance_type');
    }
  });

  it('tracks the backlog per instance the executor publishes, per environment and queue', () => {
    expect(staging.json).toHaveResourceWithProperties(AutoscalingPolicy, {
      policy_type: 'TargetTrackingScaling',
      target_tracking_configuration: {
        target_value: 4,
        customized_metric_specification: {
          namespace: 'Airfleet',
          metric_name: 'BacklogPerInstance',
          statistic: 'Average',
          metric_dimension: [
            { name: 'environment', value: 'staging' },
            { name: 'queue', value: 'etl' },
          ],
        },
      },
    });
    // One policy per queue: one group sizes the whole queue, so the queue's capacity is not counted twice.
    expect(Object.keys(resources(staging.tf, 'aws_autoscaling_policy'))).toHaveLength(2);
  });

  it('protects new workers from scale-in and gives terminating ones their drain time', () => {
    for (const group of Object.values(resources(staging.tf, 'aws_autoscaling_group'))) {
      expect(group['protect_from_scale_in']).toBe(true);
    }
    expect(staging.json).toHaveResourceWithProperties(AutoscalingLifecycleHook, {
      lifecycle_transition: 'autoscaling:EC2_INSTANCE_TERMINATING',
      heartbeat_timeout: 1920,
      default_result: 'CONTINUE',
    });
  });

  it('uses Spot with capacity rebalancing only where configured; On-Demand pools take the types in order', () => {
    expect(staging.json).toHaveResourceWithProperties(AutoscalingGroup, {
      name: 'airfleet-staging-workers-default',
      capacity_rebalance: true,
      mixed_instances_policy: expect.objectContaining({
        instances_distribution: expect.objectContaining({
          on_demand_base_capacity: 1,
          on_demand_percentage_above_base_capacity: 0,
          spot_allocation_strategy: 'price-capacity-optimized',
        }),
      }),
    });
    const etl = Object.values(resources(staging.tf, 'aws_autoscaling_group')).find((g) =>
      String(g['name']).endsWith('-etl'),
    )!;
    expect(etl).not.toHaveProperty('capacity_rebalance');
    expect(etl['mixed_instances_policy']).toMatchObject({
      instances_distribution: {
        on_demand_allocation_strategy: 'prioritized',
        on_demand_percentage_above_base_capacity: 100,
      },
    });
  });

  it('boots `airfleet worker` with the enrollment token read from Secrets Manager at start, not from user data', () => {
    const template = Object.values(resources(staging.tf, 'aws_launch_template')).find((t) =>
      String(t['name']).endsWith('-etl'),
    )!;
    const doc = JSON.parse(userData(template).replace(/^#cloud-config\n/, '')) as {
      write_files: { path: string; content: string }[];
    };
    const file = (path: string) => doc.write_files.find((f) => f.path === path)!.content;
    const run = file('/usr/local/sbin/airfleet-worker-run');
    // The image's entrypoint is `tini -- airfleet`; integration/test/stack-command-lines.test.ts runs the line.
    expect(run).toContain('"$AIRFLEET_IMAGE" worker \\');
    expect(run).not.toMatch(/airfleet worker/);
    expect(run).toContain("--queues 'etl' --concurrency 4 --runtime docker");
    expect(run).toContain('--drain-timeout 1800');
    expect(run).toContain('--env-file /run/airfleet/token.env');
    expect(file('/usr/local/sbin/airfleet-worker-prepare')).toContain("--secret-id 'airfleet/staging/enroll-token'");
    expect(file('/etc/systemd/system/airfleet-worker.service')).toContain('TimeoutStopSec=1860');
    expect(template['metadata_options']).toMatchObject({ http_tokens: 'required' });
  });

  it('protects busy workers from scale-in and drains a terminating one from the host', () => {
    const template = Object.values(resources(staging.tf, 'aws_launch_template'))[0]!;
    const text = userData(template);
    // The worker protects its instance itself while it runs tasks (worker/scale-in-protection.ts).
    expect(text).toContain("--asg-protection 'airfleet-staging-workers-");
    expect(text).toContain('AIRFLEET_INSTANCE_ID=$(imds instance-id)');
    expect(text).toContain('--label airfleet.pool=');
    expect(text).not.toContain('set-instance-protection');
    expect(text).toContain('Terminating:Wait');
    expect(text).toContain('meta-data/spot/instance-action'); // a Spot interruption notice drains too
    expect(text).toContain('complete-lifecycle-action');
    expect(text).toContain('OnUnitActiveSec=20');
    const policy = JSON.parse(String(Object.values(resources(staging.tf, 'aws_iam_role_policy'))[0]!['policy'])) as {
      Statement: { Sid: string; Action: unknown; Resource: unknown }[];
    };
    const own = policy.Statement.find((s) => s.Sid === 'OwnLifecycle')!;
    expect(own.Resource).toMatch(/:autoScalingGroup:\*:autoScalingGroupName\/airfleet-staging-workers-\*$/);
  });

  it('publishes the executor URL for the workers: the configured one, or the ECS load balancer', () => {
    expect(staging.json).toHaveResourceWithProperties(SsmParameter, {
      name: '/airfleet/staging/executor-url',
      type: 'String',
      value: 'http://executor.staging.airfleet.internal:8470',
    });
    expect(dev.json).toHaveResourceWithProperties(SsmParameter, {
      name: '/airfleet/dev/executor-url',
      value: expect.stringMatching(
        /^http:\/\/\$\{data\.terraform_remote_state\.cross-stack-reference-input-dev-executor/,
      ),
    });
  });

  it('rejects a drain timeout the lifecycle hook cannot wait for', () => {
    const pools = environments.dev.workerPools.map((p) => ({ ...p, drainTimeoutSeconds: 7200 }));
    expect(() =>
      synthEnvironment('dev', { environments: { dev: { ...environments.dev, workerPools: pools } } }),
    ).toThrow(
      /drainTimeoutSeconds 7200 plus 120 s to notice and stop exceeds the 7200 s a lifecycle hook may wait; allowed: 30 to 7080/,
    );
  });

  it('passes every guard', () => {
    expect(staging.errors).toEqual([]);
    expect(dev.errors).toEqual([]);
  });
});
