import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NomadDriverConfig } from '../../src/autoscaler/drivers/driver-config.ts';
import {
  allocIndex,
  liveAllocations,
  NOMAD_ALLOC_LABEL,
  nomadDriverConnection,
  removableFromTop,
  removalProblem,
  scaleInCount,
} from '../../src/autoscaler/drivers/nomad-driver.ts';
import type { Allocation } from '../../src/backends/nomad/nomad-types.ts';
import { parseServiceConfig } from '../../src/config.ts';
import { ConfigError } from '../../src/errors.ts';
import type { Worker } from '../../src/store/workers.ts';

/**
 * The Nomad driver's pure parts: which idle workers it may remove (those whose allocations Nomad stops on a
 * lower count: the highest-indexed live ones), the check before it lowers the count, and its configuration.
 * The driver against the Nomad fake and real workers: integration/test/autoscale-nomad.test.ts.
 */
const alloc = (id: string, index: number, over: Partial<Allocation> = {}): Allocation => ({
  ID: id,
  Name: `workers.worker[${index}]`,
  JobID: 'workers',
  TaskGroup: 'worker',
  DesiredStatus: 'run',
  ClientStatus: 'running',
  ...over,
});
const worker = (allocId: string): Worker =>
  ({ id: `w-${allocId}`, name: `worker-${allocId}`, labels: { [NOMAD_ALLOC_LABEL]: allocId } }) as unknown as Worker;

describe('nomad driver: which workers go', () => {
  const allocs = [
    alloc('a0', 0),
    alloc('a2', 2),
    alloc('a1', 1),
    alloc('a3', 3, { ClientStatus: 'pending' }),
    alloc('old', 3, { DesiredStatus: 'stop', ClientStatus: 'complete' }),
    alloc('other', 9, { TaskGroup: 'other' }),
  ];
  const live = liveAllocations(allocs, 'worker');

  it('orders the live allocations of the group by index, highest first', () => {
    expect(live.map((a) => a.ID)).toEqual(['a3', 'a2', 'a1', 'a0']);
    expect(allocIndex('workers.worker[12]')).toBe(12);
    expect(allocIndex('no-index')).toBeNull();
  });

  it('offers only idle workers at the top of the indexes, stopping at the first that is not idle', () => {
    // a3's worker is not idle (busy or not registered): nothing can be removed without Nomad stopping it.
    expect(removableFromTop(live, [worker('a2'), worker('a1'), worker('a0')])).toEqual([]);
    expect(removableFromTop(live, [worker('a3'), worker('a2'), worker('a0')]).map((w) => w.name)).toEqual([
      'worker-a3',
      'worker-a2',
    ]);
  });

  it('lowers the count only when the chosen are exactly the highest-indexed live allocations', () => {
    expect(removalProblem(live, ['a3', 'a2'])).toBeNull();
    expect(removalProblem(live, ['a3'])).toBeNull();
    expect(removalProblem(live, ['a2'])).toContain('Nomad stops the highest-indexed allocations (workers.worker[3])');
    expect(removalProblem(live, ['gone'])).toContain('allocations gone are not live allocations');
    const duplicated = liveAllocations([alloc('x', 1), alloc('y', 1)], 'worker');
    expect(removalProblem(duplicated, ['x'])).toContain('do not each hold an index of their own');
  });

  it('takes the new count from the live allocations, and waits while the count is below them', () => {
    expect(scaleInCount(4, 4, 2)).toBe(2);
    // A placement Nomad could not make (count 5, 4 live): lowering to 3 would stop only one.
    expect(scaleInCount(5, 4, 2)).toBe(2);
    expect(scaleInCount(3, 4, 1)).toContain('Nomad is stopping allocations of its own choosing');
  });
});

describe('nomad driver: configuration', () => {
  const base = {
    name: 'etl',
    queues: ['etl'],
    slotsPerWorker: 2,
    maxWorkers: 4,
  };
  const bad = (driver: Record<string, unknown>): string => {
    try {
      parseServiceConfig({ pools: [{ ...base, driver }] } as unknown as Parameters<typeof parseServiceConfig>[0]);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error('accepted');
  };

  it('validates the driver fields, naming each', () => {
    const ok = parseServiceConfig({ pools: [{ ...base, driver: { kind: 'nomad', job: 'workers', group: 'worker' } }] })
      .pools[0]!.driver;
    expect(ok).toEqual({ kind: 'nomad', job: 'workers', group: 'worker', stopTimeoutSeconds: 60 });
    expect(bad({ kind: 'nomad', group: 'worker' })).toContain('pools.0.driver.job');
    expect(bad({ kind: 'nomad', job: 'has space', group: 'worker' })).toContain('pools.0.driver.job: a Nomad job ID');
    expect(bad({ kind: 'nomad', job: 'w', group: 'worker', token: 'secret-value' })).toContain(
      'never put the Nomad token in the pool configuration',
    );
    expect(bad({ kind: 'nomad', job: 'w', group: 'worker', token: 'secret-value' })).not.toContain('secret-value');
    expect(bad({ kind: 'nomad', job: 'w', group: 'g', clientCertFile: '/etc/c.pem' })).toContain(
      'pools.0.driver.clientKeyFile: clientCertFile and clientKeyFile go together',
    );
    expect(bad({ kind: 'nomad', job: 'w', group: 'g', address: 'http://n:4646', caCertFile: '/ca.pem' })).toContain(
      'pools.0.driver.address: http://n:4646 is not https://',
    );
    expect(bad({ kind: 'nomad', job: 'w', group: 'g', address: 'nomad:4646' })).toContain(
      'pools.0.driver.address: http(s)://host:port',
    );
  });

  describe('the connection', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'airfleet-nomad-driver-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const driver = (over: Partial<NomadDriverConfig> = {}): NomadDriverConfig => ({
      kind: 'nomad',
      job: 'workers',
      group: 'worker',
      stopTimeoutSeconds: 60,
      ...over,
    });

    it("is the Nomad backend's, from NOMAD_* variables, each driver field overriding its variable", () => {
      const env = { NOMAD_ADDR: 'http://nomad.env:4646', NOMAD_NAMESPACE: 'env-ns', NOMAD_TOKEN: 'env-token' };
      expect(nomadDriverConnection(driver(), 'etl', env)).toMatchObject({
        address: 'http://nomad.env:4646',
        namespace: 'env-ns',
        token: 'env-token',
      });
      const tokenFile = join(dir, 'token');
      writeFileSync(tokenFile, 'file-token\n');
      expect(
        nomadDriverConnection(
          driver({ address: 'http://nomad.pool:4646', namespace: 'pool-ns', tokenFile }),
          'etl',
          env,
        ),
      ).toMatchObject({ address: 'http://nomad.pool:4646', namespace: 'pool-ns', token: 'file-token' });
    });

    it('names the driver field whose file cannot be read', () => {
      const fail = (over: Partial<NomadDriverConfig>) => {
        try {
          nomadDriverConnection(driver(over), 'etl', {});
        } catch (error) {
          expect(error).toBeInstanceOf(ConfigError);
          return (error as Error).message;
        }
        throw new Error('accepted');
      };
      expect(fail({ address: 'https://n:4646', caCertFile: join(dir, 'missing.pem') })).toContain(
        `pool 'etl' (driver nomad)`,
      );
      expect(fail({ address: 'https://n:4646', caCertFile: join(dir, 'missing.pem') })).toContain(
        `driver.caCertFile=${join(dir, 'missing.pem')}: cannot read the file (ENOENT)`,
      );
      expect(fail({ tokenFile: join(dir, 'nope') })).toContain(
        `pool 'etl': driver.tokenFile=${join(dir, 'nope')}: cannot read the file (ENOENT)`,
      );
      writeFileSync(join(dir, 'empty'), '\n');
      expect(fail({ tokenFile: join(dir, 'empty') })).toContain('the file is empty');
    });
  });
});
