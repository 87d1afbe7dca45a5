import { AutoscalingGroup } from '@cdktf/provider-aws/lib/autoscaling-group/index.js';
import { Token } from 'cdktf';
import type { Construct } from 'constructs';
import { AirfleetStack, type StateOptions } from '../airfleet-stack.ts';
import type { EnvironmentConfig, NomadClientPoolConfig } from '../config/schema.ts';
import { renderCloudConfig, shellQuote, shellScript } from '../lib/cloud-init.ts';
import { databaseSecretStatements, executorStatements } from '../lib/executor-permissions.ts';
import { type PolicyStatement, ServiceRole } from '../lib/iam.ts';
import { HardenedLaunchTemplate } from '../lib/launch-template.ts';
import { NOMAD_TLS_DIR, NOMAD_TLS_FILES, renderNomadClientConfig } from '../lib/nomad-client-config.ts';
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

/** The SSM parameter names a client reads its TLS material from. */
export function tlsParameters(prefix: string) {
  return {
    ca: `${prefix}/ca.pem`,
    cert: `${prefix}/client.pem`,
    key: `${prefix}/client-key.pem`,
  } as const;
}

/**
 * The user data of one client pool: the Nomad agent config, a script that fetches the TLS material from
 * SSM before every agent start (so rotation is a restart, and nothing secret is in user data or state),
 * and a first-boot script that installs Nomad and Docker when the image lacks them.
 */
export function nomadClientUserData(env: EnvironmentConfig, pool: NomadClientPoolConfig): string {
  const { nomad, aws } = env;
  const params = tlsParameters(nomad.tlsParameterPrefix);
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
        }),
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
  readonly role: ServiceRole;

  constructor(scope: Construct, props: NomadClientsStackProps) {
    super(scope, { ...props, component: 'nomad-clients' });
    const { nomad, aws } = this.env;
    const { network, data } = props;
    const prefix = nomad.tlsParameterPrefix;

    const statements: PolicyStatement[] = [
      {
        Sid: 'ReadTlsMaterial',
        Action: ['ssm:GetParameter', 'ssm:GetParameters'],
        Resource: this.arn('ssm', `parameter${prefix}/*`),
      },
      {
        // SecureString parameters are decrypted through SSM, which names the parameter in the encryption
        // context: keys of this account, through SSM, for the TLS parameters only.
        Sid: 'DecryptTlsMaterial',
        Action: 'kms:Decrypt',
        Resource: this.arn('kms', 'key/*'),
        Condition: {
          StringEquals: { 'kms:ViaService': `ssm.${aws.region}.amazonaws.com` },
          StringLike: { 'kms:EncryptionContext:PARAMETER_ARN': this.arn('ssm', `parameter${prefix}/*`) },
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
    ];
    if (this.env.executor.runtime === 'nomad') {
      // The executor job runs on these clients with host networking (the only tasks allowed to reach the
      // instance metadata service: the task namespace forbids host networking, and the hop limit of 1 keeps
      // bridge-networked containers out), so the clients' role carries the executor's permissions.
      statements.push(...databaseSecretStatements(data.connection), ...executorStatements(this));
    }
    this.role = new ServiceRole(this, 'client-role', {
      name: this.resourceName('nomad-client'),
      description: 'Nomad clients: TLS material, server discovery, image pulls',
      assumedBy: 'ec2.amazonaws.com',
      // Shell access through Session Manager instead of SSH keys and open port 22.
      managedPolicies: ['AmazonSSMManagedInstanceCore'],
      statements,
      instanceProfile: true,
      partition: this.partition,
    });

    for (const pool of nomad.clientPools) {
      const name = this.resourceName('nomad', pool.name);
      const launch = new HardenedLaunchTemplate(this, `pool-${pool.name}-launch`, {
        name,
        machineImage: this.env.machineImage,
        instanceType: pool.instanceType,
        instanceProfileArn: this.role.instanceProfile!.arn,
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
        dependsOn: this.role.grants,
      });
    }
  }
}
