import type { EnvironmentInput } from '../schema.ts';

/**
 * Shaped like production at a smaller size: remote state, three AZs behind one NAT gateway, Multi-AZ
 * database, EC2 and Spot Batch capacity, the executor as a Nomad service, two worker queues.
 */
export const staging = {
  name: 'staging',
  aws: { region: 'eu-west-1', accountId: '109876543210' },
  state: { backend: 's3', bucket: 'airfleet-terraform-state-staging', region: 'eu-west-1', keyPrefix: 'airfleet' },
  tags: { CostCenter: 'airfleet-staging' },
  imageTag: '0.1.0',
  machineImage: { ssmParameter: '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64' },
  logRetentionDays: 30,
  network: {
    cidr: '10.41.0.0/16',
    availabilityZones: ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
    natGateways: 'single',
  },
  database: {
    engineVersion: '16.4',
    instanceClass: 'db.t4g.medium',
    allocatedStorageGb: 50,
    maxAllocatedStorageGb: 200,
    multiAz: true,
    backupRetentionDays: 7,
    deletionProtection: true,
  },
  batch: {
    computeEnvironments: [
      { name: 'on-demand', kind: 'ec2', maxVcpus: 64, instanceTypes: ['m7i', 'c7i'] },
      { name: 'spot', kind: 'spot', maxVcpus: 128, instanceTypes: ['m6i', 'm7i', 'c6i', 'c7i'] },
      { name: 'fargate', kind: 'fargate', maxVcpus: 32 },
    ],
    jobQueues: [
      { name: 'critical', priority: 100, computeEnvironments: ['on-demand'] },
      { name: 'default', priority: 10, computeEnvironments: ['spot', 'on-demand'] },
      { name: 'light', priority: 5, computeEnvironments: ['fargate'], runnableTimeoutSeconds: 900 },
    ],
    jobDefinition: {
      vcpus: 2,
      memoryMiB: 4096,
      timeoutSeconds: 6 * 3600,
      secrets: [{ name: 'AIRFLOW_CONN_WAREHOUSE', secretName: 'airfleet/staging/connections/warehouse' }],
    },
  },
  nomad: {
    address: 'https://nomad.staging.airfleet.internal:4646',
    datacenter: 'eu-west-1',
    namespace: 'airflow',
    version: '1.10.5',
    serverJoin: ['provider=aws tag_key=airfleet:nomad-server tag_value=staging'],
    tlsParameterPrefix: '/airfleet/staging/nomad-tls',
    executorTokenSecretName: 'airfleet/staging/nomad-executor-token',
    clientPools: [
      {
        name: 'system',
        nodePool: 'airfleet-system',
        queue: 'system',
        instanceType: 'm7i.large',
        minSize: 2,
        maxSize: 3,
      },
      { name: 'general', nodePool: 'airflow', queue: 'default', instanceType: 'm7i.xlarge', minSize: 1, maxSize: 6 },
      {
        name: 'memory',
        nodePool: 'airflow-memory',
        queue: 'memory',
        instanceType: 'r7i.xlarge',
        minSize: 0,
        maxSize: 3,
      },
    ],
  },
  workerPools: [
    {
      queue: 'default',
      instanceTypes: ['m7i.large', 'm6i.large'],
      minSize: 1,
      maxSize: 10,
      concurrency: 8,
      targetBacklogPerInstance: 6,
      spot: { onDemandBaseCapacity: 1 },
    },
    {
      queue: 'etl',
      instanceTypes: ['c7i.xlarge'],
      minSize: 0,
      maxSize: 4,
      concurrency: 4,
      targetBacklogPerInstance: 4,
      drainTimeoutSeconds: 1800,
    },
  ],
  enrollTokenSecretName: 'airfleet/staging/enroll-token',
  // The executor on a node pool of its own (pool "system"): only those clients' role carries its rights.
  executor: {
    runtime: 'nomad',
    count: 2,
    nodePool: 'airfleet-system',
    url: 'http://executor.staging.airfleet.internal:8470',
  },
} satisfies EnvironmentInput;
