import { buildApp } from '../src/app.ts';
import { environments } from '../src/config/environments/index.ts';
import { ConfigError, checkEnvironment, fieldPath, parseEnvironments } from '../src/config/validate.ts';

/** The problems of one config as "field: message" lines, for readable assertions. */
function problems(input: unknown, label = 'dev'): string[] {
  return checkEnvironment(label, input).map((p) => `${p.field}: ${p.message}`);
}

function thrown(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('environment config validation', () => {
  it('accepts the three shipped environments and fills in defaults', () => {
    const parsed = parseEnvironments(environments);
    expect(parsed.map((e) => e.name)).toEqual(['dev', 'staging', 'prod']);
    const dev = parsed[0]!;
    expect(dev.production).toBe(false);
    expect(dev.registry).toEqual({ keepImages: 50, untaggedExpiryDays: 7 });
    expect(dev.database.masterUsername).toBe('airfleet_admin');
    expect(dev.batch.jobQueues[0]!.runnableTimeoutSeconds).toBe(1800);
    expect(dev.workerPools[0]!.spot).toEqual({
      onDemandBaseCapacity: 0,
      onDemandPercentageAboveBase: 0,
      capacityRebalance: true,
    });
  });

  it('lists every problem at once, each naming the field, the value and what is allowed', () => {
    const bad = {
      ...environments.dev,
      imageTag: 'latest',
      network: { ...environments.dev.network, cidr: '10.40.0.0/24', natGateways: 'some' },
      database: { ...environments.dev.database, backupRetentionDays: 40, instanceClass: 't3.micro' },
      batch: {
        ...environments.dev.batch,
        computeEnvironments: [{ name: 'spot', kind: 'gpu', maxVcpus: 0 }],
      },
      executor: { runtime: 'lambda' },
      typo: true,
    };
    const error = thrown(() => parseEnvironments({ dev: bad }));
    const lines = error.message.split('\n');
    expect(lines[0]).toMatch(/^Invalid environment configuration \(dev\): \d+ problems$/);
    expect(error.message).toContain(
      'dev: imageTag (got "latest"): must not be "latest": repositories use immutable tags',
    );
    expect(error.message).toContain(
      'dev: network.cidr (got "10.40.0.0/24"): must have a prefix between /16 and /20 so each private subnet gets at least a /24',
    );
    expect(error.message).toContain(
      'dev: network.natGateways (got "some"): Invalid option: expected one of "none"|"single"|"per-az"',
    );
    expect(error.message).toContain('dev: database.backupRetentionDays (got 40): Too big: expected number to be <=35');
    expect(error.message).toContain(
      'dev: database.instanceClass (got "t3.micro"): must be an RDS instance class such as db.t4g.small',
    );
    expect(error.message).toContain(
      'dev: batch.computeEnvironments[0].kind (got "gpu"): Invalid option: expected one of "ec2"|"spot"|"fargate"|"fargate-spot"',
    );
    expect(error.message).toContain(
      'dev: batch.computeEnvironments[0].maxVcpus (got 0): Too small: expected number to be >=1',
    );
    expect(error.message).toContain('dev: executor.runtime (got "lambda"): runtime must be "nomad" or "ecs"');
    expect(error.message).toContain('dev: (root): Unrecognized key: "typo"');
    expect(error.problems.length).toBeGreaterThanOrEqual(9);
  });

  it('checks cross-field rules even when another section is broken', () => {
    const bad = {
      ...environments.dev,
      database: { ...environments.dev.database, instanceClass: 42 },
      network: { ...environments.dev.network, availabilityZones: ['eu-west-1a', 'us-east-1b'] },
      batch: {
        ...environments.dev.batch,
        jobQueues: [{ name: 'default', priority: 1, computeEnvironments: ['spot', 'gpu'] }],
      },
    };
    expect(problems(bad)).toEqual(
      expect.arrayContaining([
        'database.instanceClass: Invalid input: expected string, received number',
        "network.availabilityZones[1]: must be in the environment's region eu-west-1",
        'batch.jobQueues[0].computeEnvironments[1]: names no compute environment; defined ones are: spot, fargate-spot',
      ]),
    );
  });

  it('enforces durability in production', () => {
    const weak = {
      ...environments.prod,
      state: { backend: 'local' },
      database: { ...environments.prod.database, multiAz: false, deletionProtection: false, backupRetentionDays: 1 },
    };
    expect(problems(weak, 'prod')).toEqual([
      'database.multiAz: must be true in production',
      'database.deletionProtection: must be true in production',
      'database.backupRetentionDays: must be at least 7 in production',
      'state.backend: must be "s3" in production: local state is lost with the laptop',
    ]);
  });

  it('rejects inconsistent sizes and duplicates', () => {
    const bad = {
      ...environments.dev,
      database: { ...environments.dev.database, maxAllocatedStorageGb: 10 },
      batch: {
        ...environments.dev.batch,
        computeEnvironments: [
          { name: 'spot', kind: 'spot', maxVcpus: 4, minVcpus: 8 },
          { name: 'spot', kind: 'fargate', maxVcpus: 4, instanceTypes: ['m7i'] },
        ],
        jobQueues: [{ name: 'default', priority: 1, computeEnvironments: ['spot'] }],
      },
      workerPools: [
        {
          queue: 'qq',
          instanceTypes: ['m7i.large', 'm7i.large'],
          minSize: 5,
          maxSize: 2,
          concurrency: 1,
          targetBacklogPerInstance: 1,
        },
        {
          queue: 'qq',
          instanceTypes: ['c7i.large'],
          minSize: 0,
          maxSize: 2,
          concurrency: 1,
          targetBacklogPerInstance: 1,
        },
      ],
    };
    expect(problems(bad)).toEqual(
      expect.arrayContaining([
        'database.maxAllocatedStorageGb: Too small: expected number to be >=20',
        'batch.computeEnvironments[0].minVcpus: must be at most maxVcpus (4)',
        'batch.computeEnvironments[1].instanceTypes: is only allowed for kind ec2 or spot (this one is fargate)',
        'batch.computeEnvironments: name "spot" is used twice',
        'workerPools[0].minSize: must be at most maxSize (2)',
        'workerPools[0].instanceTypes: "m7i.large" is listed twice',
      ]),
    );
    const twoPools = {
      ...environments.dev,
      workerPools: [
        {
          queue: 'qq',
          instanceTypes: ['m7i.large'],
          minSize: 0,
          maxSize: 2,
          concurrency: 1,
          targetBacklogPerInstance: 1,
        },
        {
          queue: 'qq',
          instanceTypes: ['c7i.large'],
          minSize: 0,
          maxSize: 2,
          concurrency: 1,
          targetBacklogPerInstance: 1,
        },
      ],
    };
    expect(problems(twoPools)).toEqual([
      'workerPools: queue "qq" has two pools; list its instance types in one pool instead',
    ]);
  });

  it('keeps 0.0.0.0/0 out of the config already', () => {
    const open = { ...environments.dev, executor: { runtime: 'ecs', allowedCidrs: ['0.0.0.0/0'] } };
    expect(problems(open)).toEqual([
      'executor.allowedCidrs[0]: must not be a /0: ingress from everywhere is not allowed',
    ]);
  });

  it('requires the file key and the name to agree', () => {
    const error = thrown(() => parseEnvironments({ qa: environments.dev }));
    expect(error.problems).toEqual([
      {
        environment: 'qa',
        field: 'name',
        received: 'dev',
        message: `must equal the environment's key "qa" so stack names and state keys stay predictable`,
      },
    ]);
  });

  it('reports problems of several environments together, before building anything', () => {
    const error = thrown(() =>
      buildApp({
        environments: {
          dev: { ...environments.dev, imageTag: '' },
          staging: { ...environments.staging, logRetentionDays: 10 },
        },
      }),
    );
    expect(error.message).toMatch(/^Invalid environment configuration \(dev, staging\): 2 problems/);
    expect(error.message).toContain(
      'staging: logRetentionDays (got 10): must be one of the periods CloudWatch Logs accepts: 1, 3, 5, 7, 14, 30',
    );
  });

  it('names an unknown environment and the defined ones', () => {
    expect(() => buildApp({ only: ['qa'] })).toThrow('Unknown environment "qa"; defined: dev, staging, prod');
  });

  it('formats paths with indexes', () => {
    expect(fieldPath([])).toBe('(root)');
    expect(fieldPath(['batch', 'jobQueues', 0, 'name'])).toBe('batch.jobQueues[0].name');
  });
});
