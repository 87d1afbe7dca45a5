import type { PoolConfig } from '../pool-config.ts';
import { AwsDriver } from './aws-driver.ts';
import type { DriverContext } from './context.ts';
import type { PoolDriver } from './driver.ts';
import { NomadDriver } from './nomad-driver.ts';
import { SwarmDriver } from './swarm-driver.ts';

/** One driver per pool, by the kind its configuration names (drivers/driver-config.ts lists the kinds). */
export function createDriver(pool: PoolConfig, ctx: DriverContext): PoolDriver {
  const config = pool.driver;
  switch (config.kind) {
    case 'swarm':
      return new SwarmDriver(config, ctx);
    case 'aws':
      return new AwsDriver(config, ctx);
    case 'nomad':
      return new NomadDriver(config, ctx, pool.name);
  }
}
