import { CloudwatchLogGroup } from '@cdktf/provider-aws/lib/cloudwatch-log-group/index.js';
import { EcsCluster } from '@cdktf/provider-aws/lib/ecs-cluster/index.js';
import { EcsService } from '@cdktf/provider-aws/lib/ecs-service/index.js';
import { EcsTaskDefinition } from '@cdktf/provider-aws/lib/ecs-task-definition/index.js';
import { Lb } from '@cdktf/provider-aws/lib/lb/index.js';
import { LbListener } from '@cdktf/provider-aws/lib/lb-listener/index.js';
import { LbTargetGroup } from '@cdktf/provider-aws/lib/lb-target-group/index.js';
import { VpcSecurityGroupEgressRule } from '@cdktf/provider-aws/lib/vpc-security-group-egress-rule/index.js';
import { TerraformOutput } from 'cdktf';
import type { Construct } from 'constructs';
import { AirfleetStack, type StateOptions } from '../airfleet-stack.ts';
import type { EnvironmentConfig } from '../config/schema.ts';
import { executorBackendEnv } from '../lib/batch-targets.ts';
import { databaseSecretStatements, executorStatements, RDS_CA_BUNDLE } from '../lib/executor-permissions.ts';
import { fargateSizeProblem } from '../lib/fargate.ts';
import { ServiceRole } from '../lib/iam.ts';
import { nomadBackendEnv } from '../lib/nomad-backend-env.ts';
import { executorNomadTlsParameters } from '../lib/nomad-tls.ts';
import { allowIngress, securityGroup } from '../lib/security-groups.ts';
import type { DataStack } from './data.ts';
import type { NetworkStack } from './network.ts';
import type { RegistryStack } from './registry.ts';

export interface ExecutorStackProps {
  env: EnvironmentConfig;
  state: StateOptions;
  network: NetworkStack;
  data: DataStack;
  registry: RegistryStack;
}

type EcsExecutor = Extract<EnvironmentConfig['executor'], { runtime: 'ecs' }>;

/** Secrets Manager secret with the executor's TLS certificate and key, created outside Terraform. */
export function executorTlsSecretName(env: EnvironmentConfig): string {
  return `airfleet/${env.name}/executor-tls`;
}

/**
 * The executor service where Nomad does not host it: an ECS Fargate service in the private subnets behind
 * an internal Application Load Balancer. The database credentials reach the container as ECS secrets
 * (read from the RDS-managed secret by the execution role when the task starts), as does the Nomad ACL
 * token; the task definition holds only their ARNs.
 */
export class ExecutorStack extends AirfleetStack {
  readonly url: string;
  readonly service: EcsService;

  constructor(scope: Construct, props: ExecutorStackProps) {
    super(scope, { ...props, component: 'executor' });
    const env = this.env;
    if (env.executor.runtime !== 'ecs') {
      throw new Error(`${this.stackName}: executor.runtime is "${env.executor.runtime}"; this stack is only for "ecs"`);
    }
    const executor: EcsExecutor = env.executor;
    const { network, data, registry } = props;
    const name = this.resourceName('executor');
    const https = executor.certificateArn !== undefined;
    const listenerPort = https ? 443 : 80;

    const logs = new CloudwatchLogGroup(this, 'logs', {
      name: `/airfleet/${env.name}/executor`,
      retentionInDays: env.logRetentionDays,
      ...(network.logsKey ? { kmsKeyId: network.logsKey.arn } : {}),
    });
    const cluster = new EcsCluster(this, 'cluster', {
      name,
      setting: [{ name: 'containerInsights', value: 'enabled' }],
    });

    // --- network path: callers -> internal ALB -> tasks ---------------------------------------------------
    const lbFirewall = securityGroup(this, 'lb-sg', {
      name: this.resourceName('executor-lb'),
      description: 'Executor load balancer: from the allowed CIDRs only',
      vpcId: network.vpc.id,
    });
    (executor.allowedCidrs ?? [network.vpcCidr]).forEach((cidr, i) => {
      allowIngress(this, `lb-from-${i}`, {
        securityGroupId: lbFirewall.id,
        description: `Executor API from ${cidr}`,
        fromPort: listenerPort,
        cidr,
      });
    });
    // Airflow's hosts, by their group (network stack), whatever the allowed CIDRs.
    allowIngress(this, 'lb-from-airflow', {
      securityGroupId: lbFirewall.id,
      description: 'Executor API from the Airflow components',
      fromPort: listenerPort,
      sourceSecurityGroupId: network.securityGroups.airflow.id,
    });
    allowIngress(this, 'lb-to-tasks', {
      securityGroupId: network.securityGroups.executor.id,
      description: 'Executor tasks from their load balancer',
      fromPort: executor.port,
      sourceSecurityGroupId: lbFirewall.id,
    });
    // The ALB needs a way out to the tasks: only to their port, only to their group.
    new VpcSecurityGroupEgressRule(this, 'lb-egress-to-tasks', {
      securityGroupId: lbFirewall.id,
      description: 'To the executor tasks',
      ipProtocol: 'tcp',
      fromPort: executor.port,
      toPort: executor.port,
      referencedSecurityGroupId: network.securityGroups.executor.id,
    });
    const lb = new Lb(this, 'lb', {
      name,
      internal: true,
      loadBalancerType: 'application',
      subnets: network.privateSubnets.map((s) => s.id),
      securityGroups: [lbFirewall.id],
      dropInvalidHeaderFields: true,
      // Workers and the Airflow plugin long-poll; the idle timeout must outlast the longest poll.
      idleTimeout: 300,
    });
    // ALB -> tasks over HTTPS too: the service serves TLS from the certificate in its TLS secret (the ALB
    // does not verify target certificates, so a private CA's or a self-signed one does).
    const targets = new LbTargetGroup(this, 'targets', {
      name,
      port: executor.port,
      protocol: 'HTTPS',
      targetType: 'ip',
      vpcId: network.vpc.id,
      deregistrationDelay: '30',
      healthCheck: {
        path: executor.healthCheckPath,
        protocol: 'HTTPS',
        matcher: '200',
        interval: 15,
        healthyThreshold: 2,
      },
    });
    const listener = new LbListener(this, 'listener', {
      loadBalancerArn: lb.arn,
      port: listenerPort,
      protocol: https ? 'HTTPS' : 'HTTP',
      ...(https ? { certificateArn: executor.certificateArn, sslPolicy: 'ELBSecurityPolicy-TLS13-1-2-2021-06' } : {}),
      defaultAction: [{ type: 'forward', targetGroupArn: targets.arn }],
    });

    // --- roles ---------------------------------------------------------------------------------------------
    const tokenSecret = this.arn('secretsmanager', `secret:${env.nomad.executorTokenSecretName}`);
    const tlsSecret = this.arn('secretsmanager', `secret:${executorTlsSecretName(env)}`);
    // The executor's own Nomad client certificate (the servers verify_https_client) and the Nomad CA, from
    // the SSM SecureString parameters beside the client pools' (stacks/README.md, Deploying).
    const nomadTls = executorNomadTlsParameters(env.nomad.tlsParameterPrefix);
    const nomadTlsArns = [nomadTls.ca, nomadTls.cert, nomadTls.key].map((p) => this.arn('ssm', `parameter${p}`));
    const execution = new ServiceRole(this, 'execution-role', {
      name: this.resourceName('executor-execution'),
      description: 'Starts the executor task: image, logs, the Nomad token, TLS secrets and Nomad TLS parameters',
      assumedBy: 'ecs-tasks.amazonaws.com',
      statements: [
        { Sid: 'EcrToken', Action: 'ecr:GetAuthorizationToken', Resource: '*' },
        {
          Sid: 'PullExecutor',
          Action: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability'],
          Resource: registry.repositories.executor.arn,
        },
        { Sid: 'WriteLogs', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: `${logs.arn}:*` },
        {
          Sid: 'ReadSecrets',
          Action: 'secretsmanager:GetSecretValue',
          Resource: [`${tokenSecret}-??????`, `${tlsSecret}-??????`],
        },
        { Sid: 'ReadNomadTls', Action: 'ssm:GetParameters', Resource: nomadTlsArns },
        {
          // SecureString parameters are decrypted through SSM, which names the parameter in the encryption
          // context: keys of this account, through SSM, for these three parameters only.
          Sid: 'DecryptNomadTls',
          Action: 'kms:Decrypt',
          Resource: this.arn('kms', 'key/*'),
          Condition: {
            StringEquals: { 'kms:ViaService': `ssm.${env.aws.region}.amazonaws.com` },
            StringLike: { 'kms:EncryptionContext:PARAMETER_ARN': nomadTlsArns },
          },
        },
      ],
      partition: this.partition,
    });
    const task = new ServiceRole(this, 'task-role', {
      name: this.resourceName('executor-task'),
      description: 'The executor service: Batch jobs, the backlog metric, its API token secrets',
      assumedBy: 'ecs-tasks.amazonaws.com',
      statements: [...executorStatements(this), ...databaseSecretStatements(data.connection)],
      partition: this.partition,
    });

    // --- the service ---------------------------------------------------------------------------------------
    this.node.addValidation({
      validate: () => {
        const problem = fargateSizeProblem(executor.cpu / 1024, executor.memoryMiB);
        return problem ? [`executor.cpu ${executor.cpu} / executor.memoryMiB: ${problem}`] : [];
      },
    });
    const container = {
      name: 'executor',
      image: `${registry.repositories.executor.repositoryUrl}:${env.imageTag}`,
      essential: true,
      // The image's entrypoint is `tini -- airfleet`: the command is the subcommand alone.
      command: ['serve'],
      portMappings: [{ containerPort: executor.port, protocol: 'tcp' }],
      readonlyRootFilesystem: true,
      linuxParameters: { initProcessEnabled: true },
      // The service reads PostgreSQL settings the libpq way (PG* variables); the credentials it reads from
      // its role's secret by ARN, so a rotated password is picked up without a new task.
      environment: [
        { name: 'AIRFLEET_ENVIRONMENT', value: env.name },
        { name: 'AIRFLEET_HOST', value: '0.0.0.0' },
        { name: 'AIRFLEET_PORT', value: String(executor.port) },
        { name: 'PGHOST', value: data.connection.host },
        { name: 'PGPORT', value: String(data.connection.port) },
        { name: 'PGDATABASE', value: data.connection.name },
        { name: 'PGSSLMODE', value: 'verify-full' },
        { name: 'PGSSLROOTCERT', value: RDS_CA_BUNDLE },
        // The executor's own role; read (and re-read on a refused login) by the service itself.
        { name: 'AIRFLEET_DATABASE_SECRET_ARN', value: data.connection.executorSecretArn },
        { name: 'AIRFLEET_BATCH_RESOURCE_PREFIX', value: `airfleet-${env.name}-` },
        ...Object.entries({ ...executorBackendEnv(env), ...nomadBackendEnv(env), ...data.tokens.environment() }).map(
          ([name, value]) => ({ name, value }),
        ),
        { name: 'NOMAD_ADDR', value: env.nomad.address },
        { name: 'NOMAD_REGION', value: env.nomad.region },
        { name: 'NOMAD_NAMESPACE', value: env.nomad.namespace },
        // Nomad's servers present `server.<region>.nomad` certificates, whatever name NOMAD_ADDR uses.
        { name: 'NOMAD_TLS_SERVER_NAME', value: `server.${env.nomad.region}.nomad` },
        { name: 'AWS_REGION', value: env.aws.region },
      ],
      secrets: [
        { name: 'NOMAD_TOKEN', valueFrom: tokenSecret },
        // HTTPS: certificate and key (PEM) from the TLS secret, JSON {"cert": …, "key": …}.
        { name: 'AIRFLEET_TLS_CERT', valueFrom: `${tlsSecret}:cert::` },
        { name: 'AIRFLEET_TLS_KEY', valueFrom: `${tlsSecret}:key::` },
        // Mutual TLS to the Nomad API (executor/src/backends/nomad/nomad-config.ts reads PEM values).
        { name: 'AIRFLEET_NOMAD_CACERT_PEM', valueFrom: nomadTlsArns[0]! },
        { name: 'AIRFLEET_NOMAD_CLIENT_CERT_PEM', valueFrom: nomadTlsArns[1]! },
        { name: 'AIRFLEET_NOMAD_CLIENT_KEY_PEM', valueFrom: nomadTlsArns[2]! },
      ],
      logConfiguration: {
        logDriver: 'awslogs',
        options: { 'awslogs-group': logs.name, 'awslogs-region': env.aws.region, 'awslogs-stream-prefix': 'executor' },
      },
    };
    const taskDefinition = new EcsTaskDefinition(this, 'task', {
      family: name,
      requiresCompatibilities: ['FARGATE'],
      networkMode: 'awsvpc',
      cpu: String(executor.cpu),
      memory: String(executor.memoryMiB),
      executionRoleArn: execution.arn,
      taskRoleArn: task.arn,
      runtimePlatform: { operatingSystemFamily: 'LINUX', cpuArchitecture: 'X86_64' },
      containerDefinitions: JSON.stringify([container]),
    });
    this.service = new EcsService(this, 'service', {
      name,
      cluster: cluster.arn,
      taskDefinition: taskDefinition.arn,
      desiredCount: executor.desiredCount,
      launchType: 'FARGATE',
      networkConfiguration: {
        subnets: network.privateSubnets.map((s) => s.id),
        securityGroups: [network.securityGroups.executor.id],
        assignPublicIp: false,
      },
      loadBalancer: [{ targetGroupArn: targets.arn, containerName: 'executor', containerPort: executor.port }],
      healthCheckGracePeriodSeconds: 60,
      deploymentCircuitBreaker: { enable: true, rollback: true },
      propagateTags: 'SERVICE',
      enableExecuteCommand: false,
      dependsOn: [listener, ...execution.grants, ...task.grants],
    });

    this.url = `${https ? 'https' : 'http'}://${lb.dnsName}`;
    new TerraformOutput(this, 'executor_url', { value: this.url });
  }
}
