import {
  AutoScalingClient,
  CreateAutoScalingGroupCommand,
  CreateLaunchConfigurationCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeAutoScalingInstancesCommand,
} from '@aws-sdk/client-auto-scaling';
import { CloudWatchClient, GetMetricStatisticsCommand, ListMetricsCommand } from '@aws-sdk/client-cloudwatch';
import type { Workload } from '../../executor/src/domain/workload.ts';
import { type AirfleetProcess, ServiceProcess, waitFor } from '../src/airfleet-process.ts';
import { motoAvailability, type StartedMoto, startMoto } from '../src/moto.ts';

const moto = motoAvailability();
if (!moto.ok) throw new Error(`the autoscale moto suite needs moto: ${moto.reason}`);

const REGION = 'us-east-1';

/**
 * The AWS side of the autoscaler on moto: the executor publishes `Airfleet/BacklogPerInstance` (dimensions
 * environment and queue) for the stacks' target tracking and takes a group out of 0 itself; a pull worker
 * protects its own instance from scale-in while it runs a task and drops the protection when idle.
 */
describe('autoscaler on AWS Auto Scaling (moto)', () => {
  let server: StartedMoto;
  let service: ServiceProcess;
  let asg: AutoScalingClient;
  let cloudwatch: CloudWatchClient;
  let worker: AirfleetProcess | null = null;
  let awsEnv: Record<string, string>;

  const group = (name: string, desired: number) =>
    asg.send(
      new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: name,
        LaunchConfigurationName: 'workers',
        MinSize: 0,
        MaxSize: 3,
        DesiredCapacity: desired,
        AvailabilityZones: [`${REGION}a`],
        NewInstancesProtectedFromScaleIn: false,
      }),
    );
  const describe1 = async (name: string) =>
    (await asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] }))).AutoScalingGroups![0]!;

  beforeAll(async () => {
    server = await startMoto();
    awsEnv = {
      AWS_ENDPOINT_URL: server.endpoint,
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      AWS_REGION: REGION,
    };
    const client = {
      region: REGION,
      endpoint: server.endpoint,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    };
    asg = new AutoScalingClient(client);
    cloudwatch = new CloudWatchClient(client);
    await asg.send(
      new CreateLaunchConfigurationCommand({
        LaunchConfigurationName: 'workers',
        ImageId: 'ami-12c6146b',
        InstanceType: 't3.micro',
      }),
    );
    await group('airfleet-test-workers-gpu', 0);
    await group('airfleet-test-workers-cpu', 1);
    service = await ServiceProcess.start({
      env: {
        ...awsEnv,
        AIRFLEET_AUTOSCALE_INTERVAL_MS: '500',
        AIRFLEET_POOLS: JSON.stringify([
          {
            name: 'gpu',
            queues: ['gpu'],
            slotsPerWorker: 2,
            maxWorkers: 3,
            driver: { kind: 'aws', autoScalingGroup: 'airfleet-test-workers-gpu', environment: 'test', region: REGION },
          },
        ]),
      },
    });
  }, 180_000);

  afterAll(async () => {
    await worker?.kill();
    await service?.stop();
    await server?.stop();
    asg?.destroy();
    cloudwatch?.destroy();
  });

  it('publishes BacklogPerInstance per environment and queue, and takes a group at 0 instances out of 0', async () => {
    await service.client.request('POST', '/v1/workloads/batch', {
      body: { workloads: Array.from({ length: 5 }, (_, i) => ({ key: `gpu-${i}`, queue: 'gpu', command: ['true'] })) },
    });
    const metrics = await waitFor(
      'the backlog metric in CloudWatch',
      async () => {
        const out = await cloudwatch.send(
          new ListMetricsCommand({ Namespace: 'Airfleet', MetricName: 'BacklogPerInstance' }),
        );
        return (out.Metrics ?? []).length > 0 ? out.Metrics! : null;
      },
      60_000,
      () => service.process!.tail(),
    );
    expect(metrics.map((m) => Object.fromEntries((m.Dimensions ?? []).map((d) => [d.Name, d.Value])))).toEqual([
      { environment: 'test', queue: 'gpu' },
    ]);
    // From 0: the executor sets the desired capacity to what the backlog needs (5 slots / 2 per worker = 3).
    const out = await waitFor(
      'the group to leave 0',
      async () =>
        ((await describe1('airfleet-test-workers-gpu')).DesiredCapacity ?? 0) > 0 &&
        describe1('airfleet-test-workers-gpu'),
      60_000,
      () => service.process!.tail(),
    );
    expect(out.DesiredCapacity).toBe(3);
    // The value at 0 instances is the whole backlog (5 slots), not a division by zero.
    const stats = await cloudwatch.send(
      new GetMetricStatisticsCommand({
        Namespace: 'Airfleet',
        MetricName: 'BacklogPerInstance',
        Dimensions: [
          { Name: 'environment', Value: 'test' },
          { Name: 'queue', Value: 'gpu' },
        ],
        StartTime: new Date(Date.now() - 600_000),
        EndTime: new Date(Date.now() + 60_000),
        Period: 60,
        Statistics: ['Maximum'],
      }),
    );
    expect(Math.max(...(stats.Datapoints ?? []).map((d) => d.Maximum ?? 0))).toBe(5);
    const pools = await service.client.request<{
      pools: Array<{ name: string; driver: string; status: { desired: number } | null }>;
    }>('GET', '/v1/pools');
    expect(pools.pools[0]).toMatchObject({ name: 'gpu', driver: 'aws', status: { desired: 3 } });
  });

  it('a worker protects its instance from scale-in while it runs a task, and drops the protection when idle', async () => {
    const instance = (await describe1('airfleet-test-workers-cpu')).Instances![0]!.InstanceId!;
    const protectedNow = async () =>
      (await asg.send(new DescribeAutoScalingInstancesCommand({ InstanceIds: [instance] }))).AutoScalingInstances![0]!
        .ProtectedFromScaleIn;
    expect(await protectedNow()).toBe(false);
    worker = service.worker(
      'cpu-1',
      ['--queues', 'cpu', '--concurrency', '1', '--asg-protection', 'airfleet-test-workers-cpu'],
      {
        ...awsEnv,
        AIRFLEET_INSTANCE_ID: instance,
        PATH: process.env.PATH ?? '/usr/bin:/bin',
      },
    );
    await service.client.request('POST', '/v1/workloads', {
      body: { key: 'cpu-task', queue: 'cpu', command: ['sleep', '4'] },
    });
    await waitFor(
      'the task to run on a protected instance',
      async () =>
        (await service.client.request<Workload>('GET', '/v1/workloads/cpu-task')).state === 'running' &&
        (await protectedNow()),
      60_000,
      () => worker!.tail(),
    );
    await waitFor(
      'the task to finish',
      async () => (await service.client.request<Workload>('GET', '/v1/workloads/cpu-task')).state === 'succeeded',
      60_000,
      () => worker!.tail(),
    );
    await waitFor(
      'the protection to be dropped once idle',
      async () => (await protectedNow()) === false,
      30_000,
      () => worker!.tail(),
    );
  });
});
