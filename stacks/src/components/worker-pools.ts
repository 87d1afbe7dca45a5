import { AutoscalingGroup } from '@cdktf/provider-aws/lib/autoscaling-group/index.js';
import { AutoscalingLifecycleHook } from '@cdktf/provider-aws/lib/autoscaling-lifecycle-hook/index.js';
import { AutoscalingPolicy } from '@cdktf/provider-aws/lib/autoscaling-policy/index.js';
import { SsmParameter } from '@cdktf/provider-aws/lib/ssm-parameter/index.js';
import { Token } from 'cdktf';
import type { Construct } from 'constructs';
import { AirfleetStack, type StateOptions } from '../airfleet-stack.ts';
import type { EnvironmentConfig, WorkerPoolConfig } from '../config/schema.ts';
import { IMDS_LINES, lifecycleStateLine, renderCloudConfig, shellQuote, shellScript } from '../lib/cloud-init.ts';
import { BACKLOG_METRIC } from '../lib/executor-permissions.ts';
import { ServiceRole } from '../lib/iam.ts';
import { HardenedLaunchTemplate } from '../lib/launch-template.ts';
import { autoScalingTags } from '../lib/tags.ts';
import type { NetworkStack } from './network.ts';
import { repositoryName } from './registry.ts';

export interface WorkerPoolsStackProps {
  env: EnvironmentConfig;
  state: StateOptions;
  network: NetworkStack;
  /** How workers reach the executor: a literal URL, or the executor stack's load balancer (a token). */
  executorUrl: string;
}

/** Lifecycle hooks wait at most two hours for a heartbeat. */
const MAX_HOOK_HEARTBEAT_SECONDS = 7200;
/** Time to notice a termination (guard timer) and to stop the container once drained, each. */
const DRAIN_MARGIN_SECONDS = 60;

/**
 * One Auto Scaling group per queue, its instance types as overrides of a mixed instances policy. One group
 * per queue *and* type, each tracking the same queue-wide backlog per instance, would each add the capacity
 * the whole queue needs: N groups overshoot N times.
 */
export interface WorkerGroupSpec {
  pool: WorkerPoolConfig;
  name: string;
}

/** `airfleet-<env>-workers-<queue>`, e.g. `airfleet-prod-workers-etl`. */
export function workerGroups(env: EnvironmentConfig): WorkerGroupSpec[] {
  return env.workerPools.map((pool) => ({ pool, name: `airfleet-${env.name}-workers-${pool.queue}` }));
}

/** SSM parameter (String, not a secret) with the executor URL the workers dial. */
export function executorUrlParameter(env: EnvironmentConfig): string {
  return `/airfleet/${env.name}/executor-url`;
}

/**
 * The user data of one worker group. Nothing secret is in it:
 * - airfleet-worker-prepare (before every start) reads the enrollment token from Secrets Manager into a
 *   tmpfs env file, the executor URL from SSM, and logs in to ECR;
 * - airfleet-worker.service runs `airfleet worker` in a container and drains it on stop (SIGINT, then the
 *   drain timeout);
 * - airfleet-worker-guard (a timer) keeps Auto Scaling in step with the worker: protected from scale-in
 *   while task containers run, unprotected when idle, and, when Auto Scaling terminates the instance
 *   (lifecycle hook "drain"), it drains the worker before letting the instance go.
 */
export function workerUserData(env: EnvironmentConfig, group: WorkerGroupSpec): string {
  const { pool } = group;
  const region = shellQuote(env.aws.region);
  const asg = shellQuote(group.name);
  const prepare = shellScript(
    'Before every worker start: enrollment token (Secrets Manager) to tmpfs, executor URL (SSM), ECR login.',
    [
      'umask 077',
      'install -d -m 0700 /run/airfleet',
      `token=$(aws secretsmanager get-secret-value --region ${region} --secret-id ${shellQuote(env.enrollTokenSecretName)} --query SecretString --output text)`,
      'printf \'AIRFLEET_TOKEN=%s\\n\' "$token" > /run/airfleet/token.env',
      `url=$(aws ssm get-parameter --region ${region} --name ${shellQuote(executorUrlParameter(env))} --query Parameter.Value --output text)`,
      'account=$(aws sts get-caller-identity --query Account --output text)',
      `registry="$account.dkr.ecr.${env.aws.region}.amazonaws.com"`,
      `aws ecr get-login-password --region ${region} | docker login --username AWS --password-stdin "$registry"`,
      "imds_token=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)",
      'imds() { curl -sf -H "X-aws-ec2-metadata-token: $imds_token" "http://169.254.169.254/latest/meta-data/$1"; }',
      'cat > /run/airfleet/run.env <<EOF',
      'AIRFLEET_API_URL=$url',
      'AIRFLEET_INSTANCE_ID=$(imds instance-id)',
      'AIRFLEET_INSTANCE_TYPE=$(imds instance-type)',
      `AIRFLEET_IMAGE=$registry/${repositoryName(env, 'worker')}:${env.imageTag}`,
      'EOF',
    ],
  );
  const run = shellScript('Runs the pull worker in the foreground (systemd supervises it).', [
    '. /run/airfleet/run.env',
    // Host networking and the Docker socket: the docker runtime starts one container per task.
    'exec docker run --rm --name airfleet-worker --network host \\',
    '  --env AIRFLEET_API_URL="$AIRFLEET_API_URL" --env AIRFLEET_INSTANCE_ID="$AIRFLEET_INSTANCE_ID" \\',
    `  --env AWS_REGION=${region} --env-file /run/airfleet/token.env \\`,
    // Root with CAP_NET_ADMIN in the host's network namespace: the docker runtime installs the rule that
    // keeps task containers off the instance metadata service (DOCKER-USER). The Docker socket is
    // root-equivalent anyway; the image's unprivileged default user is for the service.
    '  --user 0:0 --cap-add NET_ADMIN -v /var/run/docker.sock:/var/run/docker.sock \\',
    // The image's entrypoint is `tini -- airfleet`: the arguments start at the subcommand.
    '  "$AIRFLEET_IMAGE" worker \\',
    `  --queues ${shellQuote(pool.queue)} --concurrency ${pool.concurrency} --runtime docker \\`,
    `  --name "$(hostname)" --label instance_type="$AIRFLEET_INSTANCE_TYPE" --label asg=${asg} \\`,
    `  --label airfleet.pool=${shellQuote(pool.queue)} --drain-timeout ${pool.drainTimeoutSeconds} \\`,
    // The worker keeps its instance protected from scale-in while it runs tasks (worker/scale-in-protection.ts).
    `  --asg-protection ${asg}`,
  ]);
  const guard = shellScript(
    'On termination (lifecycle hook "drain": scale-in of an idle instance, a Spot interruption, a rebalance)\n' +
      "the worker drains before the instance goes. Scale-in protection is the worker's own (--asg-protection).",
    [
      ...IMDS_LINES,
      // EC2 gives a Spot instance two minutes: stop taking work at once, let what can finish finish.
      'if imds meta-data/spot/instance-action >/dev/null 2>&1; then',
      '  systemctl stop airfleet-worker  # SIGINT: drain',
      '  exit 0',
      'fi',
      lifecycleStateLine(region),
      'if [ "$state" = "Terminating:Wait" ]; then',
      '  systemctl stop airfleet-worker  # SIGINT: running tasks finish (bounded by the drain timeout)',
      `  aws autoscaling complete-lifecycle-action --region ${region} --auto-scaling-group-name ${asg} \\`,
      '    --lifecycle-hook-name drain --instance-id "$id" --lifecycle-action-result CONTINUE',
      '  exit 0',
      'fi',
    ],
  );
  const unit = `[Unit]
Description=airfleet pull worker (queue ${pool.queue})
After=docker.service network-online.target
Requires=docker.service

[Service]
ExecStartPre=/usr/local/sbin/airfleet-worker-prepare
ExecStartPre=-/usr/bin/docker rm -f airfleet-worker
ExecStart=/usr/local/sbin/airfleet-worker-run
# SIGINT drains: running tasks finish, no new leases; after the drain timeout systemd kills.
ExecStop=/usr/bin/docker kill --signal=SIGINT airfleet-worker
TimeoutStopSec=${pool.drainTimeoutSeconds + DRAIN_MARGIN_SECONDS}
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
`;
  const guardUnit = `[Unit]
Description=airfleet worker drain on termination
After=airfleet-worker.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/airfleet-worker-guard
TimeoutStartSec=${pool.drainTimeoutSeconds + 2 * DRAIN_MARGIN_SECONDS}
`;
  const guardTimer = `[Unit]
Description=Run the airfleet worker guard every 20 seconds

[Timer]
OnBootSec=60
OnUnitActiveSec=20
AccuracySec=1

[Install]
WantedBy=timers.target
`;
  const bootstrap = shellScript('First boot: install what the image lacks and start the worker and its guard.', [
    'command -v docker >/dev/null || dnf install -y docker',
    'command -v aws >/dev/null || dnf install -y awscli-2',
    'systemctl daemon-reload',
    'systemctl enable --now docker',
    'systemctl enable --now airfleet-worker airfleet-worker-guard.timer',
  ]);
  return renderCloudConfig({
    files: [
      { path: '/usr/local/sbin/airfleet-worker-prepare', permissions: '0750', content: prepare },
      { path: '/usr/local/sbin/airfleet-worker-run', permissions: '0750', content: run },
      { path: '/usr/local/sbin/airfleet-worker-guard', permissions: '0750', content: guard },
      { path: '/etc/systemd/system/airfleet-worker.service', content: unit },
      { path: '/etc/systemd/system/airfleet-worker-guard.service', content: guardUnit },
      { path: '/etc/systemd/system/airfleet-worker-guard.timer', content: guardTimer },
      { path: '/usr/local/sbin/airfleet-bootstrap', permissions: '0750', content: bootstrap },
    ],
    runcmd: [['/usr/local/sbin/airfleet-bootstrap']],
  });
}

/**
 * Swarm-like pools of `airfleet worker` agents: per queue one Auto Scaling group, its instance types as
 * overrides of a mixed instances policy, that tracks the backlog per instance the executor publishes
 * (CloudWatch `Airfleet/BacklogPerInstance`, dimensions `environment` and `queue`; the executor also takes a
 * group out of 0, which target tracking cannot). New instances start protected from scale-in; a worker drops
 * its own protection once idle and takes it again before a task starts, so scale-in never takes a busy
 * worker, and a termination lifecycle hook gives it its drain timeout. Spot pools rebalance capacity ahead of
 * interruptions.
 */
export class WorkerPoolsStack extends AirfleetStack {
  readonly groups: Record<string, AutoscalingGroup> = {};

  constructor(scope: Construct, props: WorkerPoolsStackProps) {
    super(scope, { ...props, component: 'worker-pools' });
    const { network } = props;
    const env = this.env;
    const groupArn = this.arn('autoscaling', `autoScalingGroup:*:autoScalingGroupName/airfleet-${env.name}-workers-*`);

    new SsmParameter(this, 'executor-url', {
      name: executorUrlParameter(env),
      type: 'String',
      value: props.executorUrl,
      description: 'Where airfleet pull workers reach the executor',
    });

    const role = new ServiceRole(this, 'worker-role', {
      name: this.resourceName('worker'),
      description: 'Pull workers: enrollment token, executor URL, image pulls, own scale-in protection',
      assumedBy: 'ec2.amazonaws.com',
      managedPolicies: ['AmazonSSMManagedInstanceCore'],
      statements: [
        {
          Sid: 'ReadEnrollmentToken',
          Action: 'secretsmanager:GetSecretValue',
          Resource: this.arn('secretsmanager', `secret:${env.enrollTokenSecretName}-??????`),
        },
        {
          Sid: 'ReadExecutorUrl',
          Action: 'ssm:GetParameter',
          Resource: this.arn('ssm', `parameter${executorUrlParameter(env)}`),
        },
        { Sid: 'EcrToken', Action: 'ecr:GetAuthorizationToken', Resource: '*' },
        {
          Sid: 'PullImages',
          Action: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability'],
          Resource: [
            this.arn('ecr', `repository/${repositoryName(env, 'worker')}`),
            this.arn('ecr', `repository/${repositoryName(env, 'task-runner')}`),
          ],
        },
        {
          // Reading the instance's own lifecycle state; the action has no resource-level permissions.
          Sid: 'ReadLifecycleState',
          Action: 'autoscaling:DescribeAutoScalingInstances',
          Resource: '*',
        },
        {
          // A worker toggles its own scale-in protection (busy: on, idle: off) and answers its drain hook.
          Sid: 'OwnLifecycle',
          Action: [
            'autoscaling:SetInstanceProtection',
            'autoscaling:CompleteLifecycleAction',
            'autoscaling:RecordLifecycleActionHeartbeat',
          ],
          Resource: groupArn,
        },
      ],
      instanceProfile: true,
      partition: this.partition,
    });

    for (const group of workerGroups(env)) {
      const { pool } = group;
      const id = pool.queue;
      const launch = new HardenedLaunchTemplate(this, `group-${id}-launch`, {
        name: group.name,
        machineImage: env.machineImage,
        instanceProfileArn: role.instanceProfile!.arn,
        securityGroupIds: [network.securityGroups.workers.id],
        rootVolumeGb: pool.volumeSizeGb,
        userData: workerUserData(env, group),
        instanceTags: { Name: group.name, 'airfleet:queue': pool.queue },
      });
      const templateRef = { id: launch.template.id, version: Token.asString(launch.template.latestVersion) };
      // The instance types are overrides of one template: the group picks among them (Spot by price and
      // capacity; On-Demand in the order listed), and one policy sizes the whole queue.
      const overrides = pool.instanceTypes.map((instanceType) => ({ instanceType }));
      const asg = new AutoscalingGroup(this, `group-${id}`, {
        name: group.name,
        minSize: pool.minSize,
        maxSize: pool.maxSize,
        vpcZoneIdentifier: network.privateSubnets.map((s) => s.id),
        protectFromScaleIn: true,
        healthCheckType: 'EC2',
        healthCheckGracePeriod: 180,
        defaultInstanceWarmup: 180,
        enabledMetrics: ['GroupDesiredCapacity', 'GroupInServiceInstances', 'GroupTotalInstances'],
        tag: autoScalingTags(this, { Name: group.name, 'airfleet:queue': pool.queue }),
        // A changed launch template (new AMI, agent, config) rolls through the group; busy workers keep
        // their scale-in protection until the guard drops it when idle, and the refresh waits for that.
        instanceRefresh: {
          strategy: 'Rolling',
          preferences: { minHealthyPercentage: 90, scaleInProtectedInstances: 'Wait', skipMatching: true },
        },
        ...(pool.spot ? { capacityRebalance: pool.spot.capacityRebalance } : {}),
        mixedInstancesPolicy: {
          instancesDistribution: pool.spot
            ? {
                onDemandBaseCapacity: pool.spot.onDemandBaseCapacity,
                onDemandPercentageAboveBaseCapacity: pool.spot.onDemandPercentageAboveBase,
                spotAllocationStrategy: 'price-capacity-optimized',
              }
            : { onDemandAllocationStrategy: 'prioritized', onDemandPercentageAboveBaseCapacity: 100 },
          launchTemplate: {
            launchTemplateSpecification: { launchTemplateId: templateRef.id, version: templateRef.version },
            override: overrides,
          },
        },
        dependsOn: role.grants,
      });
      this.groups[group.name] = asg;

      new AutoscalingLifecycleHook(this, `group-${id}-drain`, {
        name: 'drain',
        autoscalingGroupName: asg.name,
        lifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING',
        // The guard notices the hook within 20 s, drains the worker and completes the action; the margin
        // covers noticing and the container stop.
        heartbeatTimeout: pool.drainTimeoutSeconds + 2 * DRAIN_MARGIN_SECONDS,
        defaultResult: 'CONTINUE',
      });
      new AutoscalingPolicy(this, `group-${id}-backlog`, {
        name: 'backlog-per-instance',
        autoscalingGroupName: asg.name,
        policyType: 'TargetTrackingScaling',
        targetTrackingConfiguration: {
          targetValue: pool.targetBacklogPerInstance,
          customizedMetricSpecification: {
            namespace: BACKLOG_METRIC.namespace,
            metricName: BACKLOG_METRIC.name,
            statistic: 'Average',
            metricDimension: [
              { name: 'environment', value: env.name },
              { name: 'queue', value: pool.queue },
            ],
          },
        },
      });
    }

    this.node.addValidation({
      validate: () =>
        env.workerPools
          .filter((p) => p.drainTimeoutSeconds + 2 * DRAIN_MARGIN_SECONDS > MAX_HOOK_HEARTBEAT_SECONDS)
          .map(
            (p) =>
              `workerPools (queue ${p.queue}).drainTimeoutSeconds ${p.drainTimeoutSeconds} plus ${2 * DRAIN_MARGIN_SECONDS} s to notice and stop ` +
              `exceeds the ${MAX_HOOK_HEARTBEAT_SECONDS} s a lifecycle hook may wait; allowed: 30 to ${MAX_HOOK_HEARTBEAT_SECONDS - 2 * DRAIN_MARGIN_SECONDS}`,
          ),
    });
  }
}
