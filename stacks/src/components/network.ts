import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group/index.js';
import { DefaultSecurityGroup } from '@cdktf/provider-aws/lib/default-security-group/index.js';
import { Eip } from '@cdktf/provider-aws/lib/eip/index.js';
import { FlowLog } from '@cdktf/provider-aws/lib/flow-log/index.js';
import { InternetGateway } from '@cdktf/provider-aws/lib/internet-gateway/index.js';
import { KmsKey } from '@cdktf/provider-aws/lib/kms-key/index.js';
import { NatGateway } from '@cdktf/provider-aws/lib/nat-gateway/index.js';
import { Route } from '@cdktf/provider-aws/lib/route/index.js';
import { RouteTable } from '@cdktf/provider-aws/lib/route-table/index.js';
import { RouteTableAssociation } from '@cdktf/provider-aws/lib/route-table-association/index.js';
import type { SecurityGroup } from '@cdktf/provider-aws/lib/security-group/index.js';
import { Subnet } from '@cdktf/provider-aws/lib/subnet/index.js';
import { Vpc } from '@cdktf/provider-aws/lib/vpc/index.js';
import { VpcEndpoint } from '@cdktf/provider-aws/lib/vpc-endpoint/index.js';
import { TerraformOutput } from 'cdktf';
import type { Construct } from 'constructs';
import { AirfleetStack, type StateOptions } from '../airfleet-stack.ts';
import { type EnvironmentConfig, loggingOf } from '../config/schema.ts';
import { subnetLayout } from '../lib/cidr.ts';
import { policyDocument, ServiceRole } from '../lib/iam.ts';
import { allowAllEgress, allowIngress, securityGroup } from '../lib/security-groups.ts';

export interface NetworkStackProps {
  env: EnvironmentConfig;
  state: StateOptions;
}

/** The security groups the compute stacks attach and the database admits, by reference. */
export interface ComputeSecurityGroups {
  batch: SecurityGroup;
  nomadClients: SecurityGroup;
  workers: SecurityGroup;
  executor: SecurityGroup;
  /**
   * For the hosts of the Airflow components (scheduler, api-server, triggerer, dag processor), which the
   * stacks do not run: the database and the executor's load balancer let it in, like the compute groups.
   */
  airflow: SecurityGroup;
}

/** Nomad's default range for dynamic ports (services such as the executor job listen there). */
const NOMAD_DYNAMIC_PORTS = { from: 20_000, to: 32_000 } as const;

/**
 * VPC with private subnets in every configured AZ (nothing gets a public IP), optional NAT, a free S3
 * gateway endpoint (ECR layers are served from S3) and interface endpoints for the AWS APIs the fleet calls
 * most, so that traffic skips the NAT gateway. The compute security groups live here rather than in their
 * stacks so the data stack can admit them without a dependency cycle (compute stacks need the database
 * secret, the database needs the compute groups).
 */
export class NetworkStack extends AirfleetStack {
  readonly vpc: Vpc;
  readonly vpcCidr: string;
  readonly privateSubnets: Subnet[];
  readonly securityGroups: ComputeSecurityGroups;
  /** Encrypts every log group of the environment, where `logging.encryptLogGroups` is on. */
  readonly logsKey?: KmsKey;

  constructor(scope: Construct, props: NetworkStackProps) {
    super(scope, { ...props, component: 'network' });
    const { network, aws } = this.env;
    const layout = subnetLayout(network.cidr, network.availabilityZones.length);
    this.vpcCidr = network.cidr;

    this.vpc = new Vpc(this, 'vpc', {
      cidrBlock: network.cidr,
      enableDnsSupport: true,
      enableDnsHostnames: true, // interface endpoints with private DNS need both
      tags: { Name: this.resourceName('vpc') },
    });
    // Strip the default group of its allow-all rules, so nothing attached to it by accident is reachable.
    new DefaultSecurityGroup(this, 'default-security-group', { vpcId: this.vpc.id });

    this.privateSubnets = network.availabilityZones.map(
      (az, i) =>
        new Subnet(this, `private-${az}`, {
          vpcId: this.vpc.id,
          availabilityZone: az,
          cidrBlock: layout.private[i]!,
          mapPublicIpOnLaunch: false,
          tags: { Name: this.resourceName('private', az), Tier: 'private' },
        }),
    );
    const privateRoutes = network.availabilityZones.map((az, i) => {
      const table = new RouteTable(this, `private-routes-${az}`, {
        vpcId: this.vpc.id,
        tags: { Name: this.resourceName('private', az) },
      });
      new RouteTableAssociation(this, `private-routes-${az}-association`, {
        subnetId: this.privateSubnets[i]!.id,
        routeTableId: table.id,
      });
      return table;
    });

    if (network.natGateways !== 'none') {
      const igw = new InternetGateway(this, 'internet-gateway', {
        vpcId: this.vpc.id,
        tags: { Name: this.resourceName('igw') },
      });
      const publicRoutes = new RouteTable(this, 'public-routes', {
        vpcId: this.vpc.id,
        tags: { Name: this.resourceName('public') },
      });
      new Route(this, 'public-default-route', {
        routeTableId: publicRoutes.id,
        destinationCidrBlock: '0.0.0.0/0',
        gatewayId: igw.id,
      });
      const natZones =
        network.natGateways === 'per-az' ? network.availabilityZones : network.availabilityZones.slice(0, 1);
      const nats = natZones.map((az, i) => {
        const subnet = new Subnet(this, `public-${az}`, {
          vpcId: this.vpc.id,
          availabilityZone: az,
          cidrBlock: layout.public[i]!,
          mapPublicIpOnLaunch: false, // only NAT gateways live here, with their own Elastic IPs
          tags: { Name: this.resourceName('public', az), Tier: 'public' },
        });
        new RouteTableAssociation(this, `public-${az}-association`, {
          subnetId: subnet.id,
          routeTableId: publicRoutes.id,
        });
        const eip = new Eip(this, `nat-ip-${az}`, { domain: 'vpc', tags: { Name: this.resourceName('nat', az) } });
        return new NatGateway(this, `nat-${az}`, {
          subnetId: subnet.id,
          allocationId: eip.id,
          tags: { Name: this.resourceName('nat', az) },
          dependsOn: [igw],
        });
      });
      privateRoutes.forEach((table, i) => {
        const nat = nats[network.natGateways === 'per-az' ? i : 0]!;
        new Route(this, `private-default-route-${network.availabilityZones[i]}`, {
          routeTableId: table.id,
          destinationCidrBlock: '0.0.0.0/0',
          natGatewayId: nat.id,
        });
      });
    }

    new VpcEndpoint(this, 'endpoint-s3', {
      vpcId: this.vpc.id,
      serviceName: `com.amazonaws.${aws.region}.s3`,
      vpcEndpointType: 'Gateway',
      routeTableIds: privateRoutes.map((t) => t.id),
      tags: { Name: this.resourceName('s3') },
    });
    if (network.interfaceEndpoints.length > 0) {
      const endpoints = securityGroup(this, 'endpoints-sg', {
        name: this.resourceName('endpoints'),
        description: 'Interface VPC endpoints: HTTPS from inside the VPC',
        vpcId: this.vpc.id,
      });
      allowIngress(this, 'endpoints-https', {
        securityGroupId: endpoints.id,
        description: 'HTTPS from the VPC',
        fromPort: 443,
        cidr: network.cidr,
      });
      for (const service of network.interfaceEndpoints) {
        new VpcEndpoint(this, `endpoint-${service.replace('.', '-')}`, {
          vpcId: this.vpc.id,
          serviceName: `com.amazonaws.${aws.region}.${service}`,
          vpcEndpointType: 'Interface',
          privateDnsEnabled: true,
          subnetIds: this.privateSubnets.map((s) => s.id),
          securityGroupIds: [endpoints.id],
          tags: { Name: this.resourceName(service) },
        });
      }
    }

    const group = (id: string, description: string) => {
      const sg = securityGroup(this, `${id}-sg`, { name: this.resourceName(id), description, vpcId: this.vpc.id });
      allowAllEgress(this, `${id}-egress`, sg.id);
      return sg;
    };
    this.securityGroups = {
      batch: group('batch', 'AWS Batch compute: no inbound traffic'),
      nomadClients: group('nomad-clients', 'Nomad clients: Nomad HTTP API and dynamic ports from the VPC'),
      workers: group('workers', 'Pull workers: they only dial out, no inbound traffic'),
      executor: group('executor', 'Executor service tasks: inbound from its load balancer only'),
      airflow: group('airflow', 'Airflow components: they only dial out (database, executor), no inbound traffic'),
    };
    // The servers and the executor stream allocation logs from the client's HTTP API; services placed by
    // Nomad (the executor job) listen on dynamic ports. Both only from inside the VPC.
    allowIngress(this, 'nomad-clients-http', {
      securityGroupId: this.securityGroups.nomadClients.id,
      description: 'Nomad client HTTP API (mutual TLS) from the VPC',
      fromPort: 4646,
      cidr: network.cidr,
    });
    allowIngress(this, 'nomad-clients-dynamic-ports', {
      securityGroupId: this.securityGroups.nomadClients.id,
      description: 'Nomad dynamic ports from the VPC',
      fromPort: NOMAD_DYNAMIC_PORTS.from,
      toPort: NOMAD_DYNAMIC_PORTS.to,
      cidr: network.cidr,
    });

    const logging = loggingOf(this.env);
    if (logging.encryptLogGroups) this.logsKey = this.logsKmsKey();
    if (logging.flowLogs) this.flowLogs();

    new TerraformOutput(this, 'vpc_id', { value: this.vpc.id });
    new TerraformOutput(this, 'private_subnet_ids', { value: this.privateSubnets.map((s) => s.id) });
  }

  /** CloudWatch Logs may use the key for the environment's log groups only (`/airfleet/<env>/…`). */
  private logsKmsKey(): KmsKey {
    const logsPrincipal = `logs.${this.env.aws.region}.amazonaws.com`;
    return new KmsKey(this, 'logs-key', {
      description: `airfleet ${this.env.name}: CloudWatch log groups`,
      enableKeyRotation: true,
      deletionWindowInDays: this.env.production ? 30 : 7,
      policy: policyDocument([
        {
          Sid: 'AccountAdministers',
          Action: 'kms:*',
          Resource: '*',
          Principal: { AWS: `arn:${this.partition}:iam::${this.accountId}:root` },
        },
        {
          Sid: 'LogsEncryptTheEnvironmentsGroups',
          Action: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
          Resource: '*',
          Principal: { Service: logsPrincipal },
          Condition: {
            ArnLike: {
              'kms:EncryptionContext:aws:logs:arn': this.arn('logs', `log-group:/airfleet/${this.env.name}/*`),
            },
          },
        },
      ]),
    });
  }

  /** Every accepted and rejected flow of the VPC, to a log group with the environment's retention. */
  private flowLogs(): void {
    const name = `/airfleet/${this.env.name}/vpc-flow-logs`;
    const group = new CloudwatchLogGroup(this, 'flow-logs', {
      name,
      retentionInDays: this.env.logRetentionDays,
      ...(this.logsKey ? { kmsKeyId: this.logsKey.arn } : {}),
    });
    const role = new ServiceRole(this, 'flow-logs-role', {
      name: this.resourceName('vpc-flow-logs'),
      description: 'VPC flow logs delivery to CloudWatch Logs',
      assumedBy: 'vpc-flow-logs.amazonaws.com',
      partition: this.partition,
      statements: [
        {
          Sid: 'DeliverFlowLogs',
          Action: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
          Resource: [group.arn, `${group.arn}:*`],
        },
      ],
    });
    new FlowLog(this, 'flow-log', {
      vpcId: this.vpc.id,
      trafficType: 'ALL',
      logDestinationType: 'cloud-watch-logs',
      logDestination: group.arn,
      iamRoleArn: role.arn,
      maxAggregationInterval: 600,
      dependsOn: role.grants,
    });
  }
}
