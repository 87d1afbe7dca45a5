import { BatchComputeEnvironment } from '@cdktf/provider-aws/lib/batch-compute-environment/index.js';
import { BatchJobQueue } from '@cdktf/provider-aws/lib/batch-job-queue/index.js';
import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group/index.js';
import { LaunchTemplate } from '@cdktf/provider-aws/lib/launch-template/index.js';
import { Testing } from 'cdktf';
import { STUCK_RUNNABLE_REASONS } from '../../src/components/batch.ts';
import { environments } from '../../src/config/environments/index.ts';
import { onlyResource, resources, synthEnvironment } from '../support/synth.ts';

const staging = synthEnvironment('staging').get('batch');
const dev = synthEnvironment('dev').get('batch');

function jobDefinition(platform: 'ec2' | 'fargate') {
  const def = resources(staging.tf, 'aws_batch_job_definition')[`task-runner-${platform}`]!;
  return { def, container: JSON.parse(String(def['container_properties'])) as Record<string, unknown> };
}

function policyOf(tf: typeof staging.tf, roleName: string) {
  const policies = Object.values(resources(tf, 'aws_iam_role_policy'));
  const match = policies.find((p) => String(p['role']).includes(roleName));
  return match ? (JSON.parse(String(match['policy'])) as { Statement: Record<string, unknown>[] }) : undefined;
}

describe('batch stack', () => {
  it('creates EC2, Spot and Fargate compute environments as configured', () => {
    expect(staging.json).toHaveResourceWithProperties(BatchComputeEnvironment, {
      compute_environment_name: 'airfleet-staging-on-demand',
      type: 'MANAGED',
      compute_resources: expect.objectContaining({
        type: 'EC2',
        max_vcpus: 64,
        instance_type: ['m7i', 'c7i'],
        allocation_strategy: 'BEST_FIT_PROGRESSIVE',
      }),
    });
    expect(staging.json).toHaveResourceWithProperties(BatchComputeEnvironment, {
      compute_environment_name: 'airfleet-staging-spot',
      compute_resources: expect.objectContaining({
        type: 'SPOT',
        allocation_strategy: 'SPOT_PRICE_CAPACITY_OPTIMIZED',
      }),
    });
    const fargate = Object.values(resources(staging.tf, 'aws_batch_compute_environment')).find(
      (ce) => ce['compute_environment_name'] === 'airfleet-staging-fargate',
    )!;
    expect(fargate['compute_resources']).toMatchObject({ type: 'FARGATE', max_vcpus: 32 });
    expect(fargate['compute_resources']).not.toHaveProperty('instance_role');
  });

  it('launches EC2 capacity from a hardened template: IMDSv2 only, encrypted root volume', () => {
    expect(staging.json).toHaveResourceWithProperties(LaunchTemplate, {
      metadata_options: expect.objectContaining({ http_tokens: 'required', http_put_response_hop_limit: 1 }),
      block_device_mappings: [expect.objectContaining({ ebs: expect.objectContaining({ encrypted: 'true' }) })],
    });
    const ce = Object.values(resources(staging.tf, 'aws_batch_compute_environment')).find(
      (c) => c['compute_environment_name'] === 'airfleet-staging-spot',
    )!;
    expect((ce['compute_resources'] as Record<string, unknown>)['launch_template']).toBeDefined();
  });

  it('pins the launch template version of EC2 capacity (never $Latest)', () => {
    const ces = Object.values(resources(staging.tf, 'aws_batch_compute_environment'))
      .map((c) => (c['compute_resources'] as Record<string, unknown>)['launch_template'] as Record<string, string>)
      .filter(Boolean);
    expect(ces.length).toBeGreaterThan(0);
    for (const template of ces)
      expect(template['version']).toMatch(/^\$\{aws_launch_template\.launch-template_\w+\.latest_version\}$/);
    expect(JSON.stringify(staging.tf)).not.toContain('$Latest');
  });

  it('orders compute environments per queue and cancels jobs stuck in RUNNABLE', () => {
    const queue = Object.values(resources(staging.tf, 'aws_batch_job_queue')).find(
      (q) => q['name'] === 'airfleet-staging-default',
    )!;
    expect(queue['priority']).toBe(10);
    const order = queue['compute_environment_order'] as { order: number; compute_environment: string }[];
    expect(order.map((o) => o.order)).toEqual([1, 2]);
    expect(order[0]!.compute_environment).toContain('compute-spot');
    expect(order[1]!.compute_environment).toContain('compute-on-demand');
    expect(staging.json).toHaveResourceWithProperties(BatchJobQueue, {
      name: 'airfleet-staging-light',
      job_state_time_limit_action: STUCK_RUNNABLE_REASONS.map((reason) => ({
        action: 'CANCEL',
        state: 'RUNNABLE',
        reason,
        max_time_seconds: 900,
      })),
    });
  });

  it('defines the task runner per platform with resources, logs, secrets, one attempt and a timeout', () => {
    const { def, container } = jobDefinition('ec2');
    expect(def).toMatchObject({
      type: 'container',
      platform_capabilities: ['EC2'],
      // No Batch-side retry, not even of host failures: a retried job re-runs a task that had started.
      retry_strategy: { attempts: 1 },
      timeout: { attempt_duration_seconds: 21_600 },
    });
    expect(def['retry_strategy']).not.toHaveProperty('evaluate_on_exit');
    expect(jobDefinition('fargate').def['retry_strategy']).toEqual({ attempts: 1 });
    expect(container['image']).toMatch(/repository_url.*:0\.1\.0$/);
    expect(container['resourceRequirements']).toEqual([
      { type: 'VCPU', value: '2' },
      { type: 'MEMORY', value: '4096' },
    ]);
    expect(container['logConfiguration']).toMatchObject({
      logDriver: 'awslogs',
      options: { 'awslogs-region': 'eu-west-1', 'awslogs-stream-prefix': 'task-runner' },
    });
    expect(container['secrets']).toEqual([
      {
        name: 'AIRFLOW_CONN_WAREHOUSE',
        valueFrom: expect.stringMatching(
          /^arn:aws:secretsmanager:eu-west-1:109876543210:secret:airfleet\/staging\/connections\/warehouse$/,
        ),
      },
    ]);
    const fargate = jobDefinition('fargate').container;
    expect(fargate['networkConfiguration']).toEqual({ assignPublicIp: 'DISABLED' });
  });

  it('grants the four roles least privilege: the execution role reads only its image, log group and secrets', () => {
    const roles = Object.values(resources(staging.tf, 'aws_iam_role')).map((r) => r['name']);
    expect(roles.sort()).toEqual(
      [
        'airfleet-staging-batch-execution',
        'airfleet-staging-batch-instance',
        'airfleet-staging-batch-job',
        'airfleet-staging-batch-service',
      ].sort(),
    );
    const execution = policyOf(staging.tf, 'execution-role')!;
    const bySid = Object.fromEntries(execution.Statement.map((s) => [s['Sid'], s]));
    expect(bySid['PullTaskRunner']!['Resource']).toMatch(/repository-task-runner.*arn/);
    expect(bySid['WriteLogs']!['Resource']).toBe(`\${aws_cloudwatch_log_group.logs.arn}:*`);
    expect(bySid['ReadTaskSecrets']!['Resource']).toEqual([
      expect.stringMatching(/:secret:airfleet\/staging\/connections\/warehouse-\?\?\?\?\?\?$/),
    ]);
    // Only GetAuthorizationToken is account-wide (it has no resource scoping).
    const wildcard = execution.Statement.filter((s) => s['Resource'] === '*').map((s) => s['Action']);
    expect(wildcard).toEqual(['ecr:GetAuthorizationToken']);
    // The job role reads its attempts' secrets (airfleet-batch-entry) and nothing else.
    expect(policyOf(staging.tf, 'job-role')!.Statement).toEqual([
      expect.objectContaining({
        Sid: 'ReadAttemptSecrets',
        Action: 'secretsmanager:GetSecretValue',
        Resource: expect.stringMatching(/:secretsmanager:eu-west-1:.*:secret:airfleet-staging-attempts\/\*$/),
      }),
    ]);
  });

  it('keeps task logs for the configured retention', () => {
    expect(staging.json).toHaveResourceWithProperties(CloudwatchLogGroup, {
      name: '/airfleet/staging/batch',
      retention_in_days: 30,
    });
    expect(onlyResource(dev.tf, 'aws_cloudwatch_log_group')['retention_in_days']).toBe(7);
  });

  it('rejects a queue that mixes EC2 and Fargate compute environments', () => {
    const mixed = {
      ...environments.dev,
      batch: {
        ...environments.dev.batch,
        jobQueues: [{ name: 'mixed', priority: 1, computeEnvironments: ['spot', 'fargate-spot'] }],
      },
    };
    expect(() => synthEnvironment('dev', { environments: { dev: mixed } })).toThrow(
      /job queue "mixed" mixes EC2\/Spot and Fargate compute environments \(spot, fargate-spot\)/,
    );
  });

  it('rejects a job size Fargate does not offer, naming the allowed range', () => {
    const tooSmall = {
      ...environments.dev,
      batch: { ...environments.dev.batch, jobDefinition: { vcpus: 1, memoryMiB: 1024, timeoutSeconds: 600 } },
    };
    expect(() => synthEnvironment('dev', { environments: { dev: tooSmall } })).toThrow(
      /1024 MiB does not fit 1 vCPU on Fargate; allowed: 2048 to 8192 MiB in steps of 1024/,
    );
  });

  it('passes every guard', () => {
    expect(staging.errors).toEqual([]);
    expect(dev.errors).toEqual([]);
    expect(Testing.synth(dev.stack)).toBeTruthy();
  });
});
