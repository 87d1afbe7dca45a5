import type { EnvironmentInput } from '../schema.ts';

/**
 * Production: remote state, a pinned account, a NAT gateway per AZ, Multi-AZ database with 14 days of
 * backups and deletion protection, On-Demand capacity first for critical work.
 */
export const prod = {
  name: 'prod',
  production: true,
  aws: { region: 'eu-west-1', accountId: '210987654321' },
  state: {
    backend: 's3',
    bucket: 'airfleet-terraform-state-prod',
    region: 'eu-west-1',
    keyPrefix: 'airfleet',
    kmsKeyId: 'alias/airfleet-terraform-state',
  },
  tags: { CostCenter: 'airfleet-prod', DataClassification: 'internal' },
  imageTag: '0.1.0',
  machineImage: { ssmParameter: '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64' },
  logRetentionDays: 90,
  logging: { flowLogs: true, encryptLogGroups: true },
  network: {
    cidr: '10.42.0.0/16',
    availabilityZones: ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
    natGateways: 'per-az',
    interfaceEndpoints: [
      'ecr.api',
      'ecr.dkr',
      'logs',
      'secretsmanager',
      'ssm',
      'sts',
      'monitoring',
      'autoscaling',
      'batch',
    ],
  },
  database: {
    engineVersion: '16.4',
    instanceClass: 'db.m7g.large',
    allocatedStorageGb: 100,
    maxAllocatedStorageGb: 1000,
    multiAz: true,
    backupRetentionDays: 14,
    deletionProtection: true,
    performanceInsights: true,
  },
  batch: {
    computeEnvironments: [
      { name: 'on-demand', kind: 'ec2', minVcpus: 4, maxVcpus: 256, instanceTypes: ['m7i', 'c7i', 'r7i'] },
      { name: 'spot', kind: 'spot', maxVcpus: 512, instanceTypes: ['m6i', 'm7i', 'c6i', 'c7i', 'r6i', 'r7i'] },
      { name: 'fargate', kind: 'fargate', maxVcpus: 64 },
    ],
    jobQueues: [
      { name: 'critical', priority: 100, computeEnvironments: ['on-demand'] },
      { name: 'default', priority: 10, computeEnvironments: ['spot', 'on-demand'] },
      { name: 'light', priority: 5, computeEnvironments: ['fargate'], runnableTimeoutSeconds: 900 },
    ],
    jobDefinition: {
      vcpus: 2,
      memoryMiB: 8192,
      timeoutSeconds: 12 * 3600,
      secrets: [
        { name: 'AIRFLOW_CONN_WAREHOUSE', secretName: 'airfleet/prod/connections/warehouse' },
        { name: 'SLACK_WEBHOOK_URL', secretName: 'airfleet/prod/alerting', jsonKey: 'slack_webhook_url' },
      ],
    },
    logRetentionDays: 90,
  },
  nomad: {
    address: 'https://nomad.prod.airfleet.internal:4646',
    datacenter: 'eu-west-1',
    namespace: 'airflow',
    version: '1.10.5',
    serverJoin: ['provider=aws tag_key=airfleet:nomad-server tag_value=prod'],
    tlsParameterPrefix: '/airfleet/prod/nomad-tls',
    executorTokenSecretName: 'airfleet/prod/nomad-executor-token',
    clientPools: [
      { name: 'general', nodePool: 'airflow', queue: 'default', instanceType: 'm7i.2xlarge', minSize: 3, maxSize: 30 },
      {
        name: 'memory',
        nodePool: 'airflow-memory',
        queue: 'memory',
        instanceType: 'r7i.2xlarge',
        minSize: 1,
        maxSize: 10,
        volumeSizeGb: 200,
      },
    ],
  },
  workerPools: [
    {
      queue: 'default',
      instanceTypes: ['m7i.xlarge', 'm6i.xlarge', 'm7a.xlarge'],
      minSize: 2,
      maxSize: 40,
      concurrency: 16,
      targetBacklogPerInstance: 12,
      spot: { onDemandBaseCapacity: 2, onDemandPercentageAboveBase: 20 },
    },
    {
      queue: 'etl',
      instanceTypes: ['c7i.2xlarge'],
      minSize: 1,
      maxSize: 12,
      concurrency: 8,
      targetBacklogPerInstance: 6,
      drainTimeoutSeconds: 3600,
      volumeSizeGb: 200,
    },
  ],
  enrollTokenSecretName: 'airfleet/prod/enroll-token',
  executor: { runtime: 'nomad', count: 3, cpu: 2000, memoryMb: 1024, url: 'https://executor.prod.airfleet.internal' },
} satisfies EnvironmentInput;
