import { AutoscalingGroup } from '@cdktf/provider-aws/lib/autoscaling-group/index.js';
import { AutoscalingLifecycleHook } from '@cdktf/provider-aws/lib/autoscaling-lifecycle-hook/index.js';
import { Token } from 'cdktf';
import type { Construct } from 'constructs';
import { AirfleetStack, type StateOptions } from '../airfleet-stack.ts';
import type { EnvironmentConfig, NomadClientPoolConfig } from '../config/schema.ts';
import { IMDS_LINES, lifecycleStateLine, renderCloudConfig, shellQuote, shellScript } from '../lib/cloud-init.ts';
import { databaseSecretStatements, executorStatements } from '../lib/executor-permissions.ts';
import { type PolicyStatement, ServiceRole } from '../lib/iam.ts';
import { HardenedLaunchTemplate } from '../lib/launch-template.ts';
import { NOMAD_TLS_DIR, NOMAD_TLS_FILES, renderNomadClientConfig } from '../lib/nomad-client-config.ts';
import { tlsParameters } from '../lib/nomad-tls.ts';
import { autoScalingTags } from '../lib/tags.ts';
import type { DataStack } from './data.ts';
import type { NetworkStack } from './network.ts';
import { repositoryName } from './registry.ts';

export interface NomadClientsStackProps {
  env: EnvironmentConfig;
  state: StateOptions;
  network: NetworkStack;
  /** Needed when the executor runs on Nomad: the clients' role may then read the database secret. */
  data: DataStack;
}

/** Where the host volumes live on every client. */
export const HOST_VOLUME_PATHS = { config: '/opt/airfleet/config', dags: '/opt/airfleet/dags' } as const;

/** `airfleet-<env>-nomad-<pool>`: the pool's Auto Scaling group. */
export function nomadClientGroupName(env: EnvironmentConfig, pool: NomadClientPoolConfig): string {
  return `airfleet-${env.name}-nomad-${pool.name}`;
}

/** The node pool the executor job runs on (where the executor runs on Nomad). */
export function executorNodePool(env: EnvironmentConfig): string | undefined {
  if (env.executor.runtime !== 'nomad') return undefined;
  return env.executor.nodePool ?? env.nomad.clientPools[0]!.nodePool;
}

/** Seconds a terminating client gets to drain (Nomad's drain deadline), and the hook's wait past it. */
export const NOMAD_DRAIN_SECONDS = 600;
const DRAIN_HOOK_MARGIN_SECONDS = 120;

/**
 * The user data of one client pool: the Nomad agent config, a script that fetches the TLS material from
 * SSM before every agent start (so rotation is a restart, and nothing secret is in user data or state),
 * and a first-boot script that installs Nomad and Docker when the image lacks them.
 */
export function nomadClientUserData(env: EnvironmentConfig, pool: NomadClientPoolConfig): string {
  const { nomad, aws } = env;
  const params = tlsParameters(nomad.tlsParameterPrefix, pool.name);
  const region = shellQuote(aws.region);
  const group = shellQuote(nomadClientGroupName(env, pool));
  const guard = shellScript(
    'On termination (lifecycle hook "drain"): stop Nomad, which drains the node first (drain_on_shutdown),\n' +
      'then let the instance go.',
    [
      ...IMDS_LINES,
      lifecycleStateLine(region),
      '[ "$state" = "Terminating:Wait" ] || exit 0',
      'systemctl stop nomad',
      `aws autoscaling complete-lifecycle-action --region ${region} --auto-scaling-group-name ${group} \\`,
      '  --lifecycle-hook-name drain --instance-id "$id" --lifecycle-action-result CONTINUE',
    ],
  );
  const fetchTls = shellScript(
    'Fetches the Nomad client TLS material from SSM Parameter Store (SecureString) before each agent start.',
    [
      'umask 077',
      `install -d -m 0700 ${NOMAD_TLS_DIR}`,
      'fetch() {',
      `  aws ssm get-parameter --region ${shellQuote(aws.region)} --name "$1" --with-decryption \\`,
      '    --query Parameter.Value --output text > "$2.tmp"',
      '  mv "$2.tmp" "$2"',
      '}',
      `fetch ${shellQuote(params.ca)} ${NOMAD_TLS_FILES.caFile}`,
      `fetch ${shellQuote(params.cert)} ${NOMAD_TLS_FILES.certFile}`,
      `fetch ${shellQuote(params.key)} ${NOMAD_TLS_FILES.keyFile}`,
    ],
  );
  const bootstrap = shellScript('First boot: install what the image lacks, create the host volumes, start Nomad.', [
    'if ! command -v nomad >/dev/null; then',
    '  curl -fsSL https://rpm.releases.hashicorp.com/AmazonLinux/hashicorp.repo -o /etc/yum.repos.d/hashicorp.repo',
    `  dnf install -y ${shellQuote(`nomad-${nomad.version}`)}`,
    'fi',
    'command -v docker >/dev/null || dnf install -y docker',
    'command -v aws >/dev/null || dnf install -y awscli-2',
    `install -d -m 0755 ${HOST_VOLUME_PATHS.config} ${HOST_VOLUME_PATHS.dags}`,
    'install -d -m 0700 /opt/nomad/data',
    'systemctl daemon-reload',
    'systemctl enable --now docker',
    'systemctl enable --now nomad',
    'systemctl enable --now airfleet-nomad-drain-guard.timer',
  ]);
  return renderCloudConfig({
    files: [
      {
        path: '/etc/nomad.d/nomad.hcl',
        permissions: '0640',
        content: renderNomadClientConfig({
          region: nomad.region,
          datacenter: nomad.datacenter,
          nodePool: pool.nodePool,
          serverJoin: nomad.serverJoin,
          meta: { queue: pool.queue, instance_type: pool.instanceType, airfleet_pool: pool.name },
          hostVolumes: HOST_VOLUME_PATHS,
          tls: NOMAD_TLS_FILES,
          drainDeadlineSeconds: NOMAD_DRAIN_SECONDS,
        }),
      },
      { path: '/usr/local/sbin/airfleet-nomad-drain-guard', permissions: '0750', content: guard },
      {
        path: '/etc/systemd/system/airfleet-nomad-drain-guard.service',
        content: `[Unit]\nDescription=Drain this Nomad client when Auto Scaling terminates it\n\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/airfleet-nomad-drain-guard\nTimeoutStartSec=${NOMAD_DRAIN_SECONDS + DRAIN_HOOK_MARGIN_SECONDS / 2}\n`,
      },
      {
        path: '/etc/systemd/system/airfleet-nomad-drain-guard.timer',
        content:
          '[Unit]\nDescription=Check every 20 seconds whether this Nomad client is terminating\n\n[Timer]\nOnBootSec=60\nOnUnitActiveSec=20\nAccuracySec=1\n\n[Install]\nWantedBy=timers.target\n',
      },
      { path: '/usr/local/sbin/airfleet-nomad-tls', permissions: '0750', content: fetchTls },
      {
        path: '/etc/systemd/system/nomad.service.d/airfleet.conf',
        content: '[Service]\nExecStartPre=/usr/local/sbin/airfleet-nomad-tls\n',
      },
      { path: '/usr/local/sbin/airfleet-bootstrap', permissions: '0750', content: bootstrap },
    ],
    runcmd: [['/usr/local/sbin/airfleet-bootstrap']],
  });
}

/**
 * Nomad client machines: per client pool a hardened launch template (IMDSv2 only, encrypted root volume,
 * user data from `nomadClientUserData`) and an Auto Scaling group across the private subnets. The instance
 * role may read exactly the pool's TLS parameters, join the servers by tag, and pull the project's images.
 */
export class NomadClientsStack extends AirfleetStack {
  readonly groups: Record<string, AutoscalingGroup> = {};
  /** One role and instance profile per pool: its own TLS material; the executor's rights on its pool only. */
  readonly roles: Record<string, ServiceRole> = {};

  constructor(scope: Construct, props: NomadClientsStackProps) {
    super(scope, { ...props, component: 'nomad-clients' });
    const { nomad, aws } = this.env;
    const { network, data } = props;
    const prefix = nomad.tlsParameterPrefix;

    const executorPool = executorNodePool(this.env);
    for (const pool of nomad.clientPools) {
      const own = tlsParameters(prefix, pool.name);
      const tlsArns = [own.ca, own.cert, own.key].map((p) => this.arn('ssm', `parameter${p}`));
      const statements: PolicyStatement[] = [
        {
          // The shared CA and this pool's own certificate and key, nothing of another pool.
          Sid: 'ReadTlsMaterial',
          Action: ['ssm:GetParameter', 'ssm:GetParameters'],
          Resource: tlsArns,
        },
        {
          // SecureString parameters are decrypted through SSM, which names the parameter in the encryption
          // context: keys of this account, through SSM, for this pool's TLS parameters only.
          Sid: 'DecryptTlsMaterial',
          Action: 'kms:Decrypt',
          Resource: this.arn('kms', 'key/*'),
          Condition: {
            StringEquals: { 'kms:ViaService': `ssm.${aws.region}.amazonaws.com` },
            StringLike: { 'kms:EncryptionContext:PARAMETER_ARN': tlsArns },
          },
        },
        {
          // Cloud auto-join (provider=aws) lists instances by tag; DescribeInstances has no resource scoping.
          Sid: 'DiscoverServers',
          Action: 'ec2:DescribeInstances',
          Resource: '*',
        },
        { Sid: 'EcrToken', Action: 'ecr:GetAuthorizationToken', Resource: '*' },
        {
          Sid: 'PullTaskImages',
          Action: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability'],
          Resource: [
            this.arn('ecr', `repository/${repositoryName(this.env, 'task-runner')}`),
            this.arn('ecr', `repository/${repositoryName(this.env, 'executor')}`),
          ],
        },
        // The drain guard reads its own lifecycle state and answers the drain hook of its own group.
        { Sid: 'ReadLifecycleState', Action: 'autoscaling:DescribeAutoScalingInstances', Resource: '*' },
        {
          Sid: 'CompleteDrain',
          Action: ['autoscaling:CompleteLifecycleAction', 'autoscaling:RecordLifecycleActionHeartbeat'],
          Resource: this.arn(
            'autoscaling',
            `autoScalingGroup:*:autoScalingGroupName/${nomadClientGroupName(this.env, pool)}`,
          ),
        },
      ];
      if (pool.nodePool === executorPool) {
        // The executor job runs on this pool alone, with host networking (the only tasks allowed to reach
        // the instance metadata service: the task namespace forbids host networking and is not allowed on
        // this node pool, and the hop limit of 1 keeps bridge-networked containers out), so only this
        // pool's role carries the executor's permissions.
        statements.push(...databaseSecretStatements(data.connection), ...executorStatements(this));
      }
      this.roles[pool.name] = new ServiceRole(this, `pool-${pool.name}-role`, {
        name: this.resourceName('nomad', pool.name),
        description: `Nomad clients of pool ${pool.name}: its TLS material, server discovery, image pulls${pool.nodePool === executorPool ? ', the executor' : ''}`,
        assumedBy: 'ec2.amazonaws.com',
        // Shell access through Session Manager instead of SSH keys and open port 22.
        managedPolicies: ['AmazonSSMManagedInstanceCore'],
        statements,
        instanceProfile: true,
        partition: this.partition,
      });
    }

    for (const pool of nomad.clientPools) {
      const name = this.resourceName('nomad', pool.name);
      const launch = new HardenedLaunchTemplate(this, `pool-${pool.name}-launch`, {
        name,
        machineImage: this.env.machineImage,
        instanceType: pool.instanceType,
        instanceProfileArn: this.roles[pool.name]!.instanceProfile!.arn,
        securityGroupIds: [network.securityGroups.nomadClients.id],
        rootVolumeGb: pool.volumeSizeGb,
        userData: nomadClientUserData(this.env, pool),
        instanceTags: { Name: name, 'airfleet:nomad-pool': pool.name, 'airfleet:node-pool': pool.nodePool },
      });
      this.groups[pool.name] = new AutoscalingGroup(this, `pool-${pool.name}`, {
        name,
        minSize: pool.minSize,
        maxSize: pool.maxSize,
        vpcZoneIdentifier: network.privateSubnets.map((s) => s.id),
        launchTemplate: { id: launch.template.id, version: Token.asString(launch.template.latestVersion) },
        healthCheckType: 'EC2',
        healthCheckGracePeriod: 300,
        // A changed launch template (new AMI, new agent config) rolls through the pool.
        instanceRefresh: { strategy: 'Rolling', preferences: { minHealthyPercentage: 90 } },
        enabledMetrics: ['GroupDesiredCapacity', 'GroupInServiceInstances', 'GroupTotalInstances'],
        tag: autoScalingTags(this, { Name: name }),
        dependsOn: this.roles[pool.name]!.grants,
      });
      new AutoscalingLifecycleHook(this, `pool-${pool.name}-drain`, {
        name: 'drain',
        autoscalingGroupName: this.groups[pool.name]!.name,
        lifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING',
        // The guard notices within 20 s and stops Nomad, which drains for up to NOMAD_DRAIN_SECONDS.
        heartbeatTimeout: NOMAD_DRAIN_SECONDS + DRAIN_HOOK_MARGIN_SECONDS,
        defaultResult: 'CONTINUE',
      });
    }
  }
}
