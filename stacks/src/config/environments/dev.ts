import type { EnvironmentInput } from '../schema.ts';

/**
 * A throwaway development environment: local state, one NAT gateway, a small single-AZ database without
 * deletion protection, Fargate Spot for Batch, the executor on ECS Fargate. Small enough to apply to moto.
 */
export const dev = {
  name: 'dev',
  // The account an AWS emulator answers with (moto's default): CI applies dev to moto. A real dev account
  // replaces it; credentials of any other account are refused before any change.
  aws: { region: 'eu-west-1', accountId: '123456789012' },
  state: { backend: 'local' },
  tags: { CostCenter: 'airfleet-dev' },
  imageTag: '0.1.0',
  machineImage: { ssmParameter: '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64' },
  logRetentionDays: 14,
  network: {
    cidr: '10.40.0.0/16',
    availabilityZones: ['eu-west-1a', 'eu-west-1b'],
    natGateways: 'single',
    interfaceEndpoints: ['ecr.api', 'ecr.dkr', 'logs', 'secretsmanager'],
  },
  database: {
    engineVersion: '16.4',
    instanceClass: 'db.t4g.micro',
    allocatedStorageGb: 20,
    multiAz: false,
    backupRetentionDays: 1,
    deletionProtection: false,
  },
  batch: {
    computeEnvironments: [
      { name: 'spot', kind: 'spot', maxVcpus: 32, instanceTypes: ['m6i', 'm7i'], spotBidPercentage: 80 },
      { name: 'fargate-spot', kind: 'fargate-spot', maxVcpus: 16 },
    ],
    jobQueues: [
      { name: 'default', priority: 10, computeEnvironments: ['spot'] },
      { name: 'light', priority: 5, computeEnvironments: ['fargate-spot'], runnableTimeoutSeconds: 900 },
    ],
    jobDefinition: { vcpus: 1, memoryMiB: 2048, timeoutSeconds: 3600 },
    logRetentionDays: 7,
  },
  nomad: {
    address: 'https://nomad.dev.airfleet.internal:4646',
    datacenter: 'dc1',
    namespace: 'airflow',
    version: '1.10.5',
    serverJoin: ['provider=aws tag_key=airfleet:nomad-server tag_value=dev'],
    tlsParameterPrefix: '/airfleet/dev/nomad-tls',
    executorTokenSecretName: 'airfleet/dev/nomad-executor-token',
    clientPools: [
      { name: 'general', nodePool: 'airflow', queue: 'default', instanceType: 't3.large', minSize: 0, maxSize: 2 },
    ],
  },
  workerPools: [
    {
      queue: 'default',
      instanceTypes: ['t3.large'],
      minSize: 0,
      maxSize: 3,
      concurrency: 4,
      targetBacklogPerInstance: 4,
      spot: {},
    },
  ],
  enrollTokenSecretName: 'airfleet/dev/enroll-token',
  executor: { runtime: 'ecs', desiredCount: 1 },
} satisfies EnvironmentInput;
