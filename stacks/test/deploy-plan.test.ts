import { DeployPlanError, deploymentOrder, environmentsIn, unselectedDependencies } from '../src/deploy-plan.ts';

const manifest = {
  stacks: {
    'dev-worker-pools': { dependencies: ['dev-executor', 'dev-network'] },
    'dev-executor': { dependencies: ['dev-network', 'dev-data', 'dev-registry'] },
    'dev-data': { dependencies: ['dev-network'] },
    'dev-network': { dependencies: [] },
    'dev-registry': {},
    'prod-network': { dependencies: [] },
  },
};

describe('deploy plan', () => {
  it('orders an environment so every stack comes after what it reads', () => {
    const order = deploymentOrder(manifest, 'dev');
    expect(order).toHaveLength(5);
    const before = (a: string, b: string) => order.indexOf(`dev-${a}`) < order.indexOf(`dev-${b}`);
    expect(before('network', 'data')).toBe(true);
    expect(before('data', 'executor')).toBe(true);
    expect(before('registry', 'executor')).toBe(true);
    expect(before('executor', 'worker-pools')).toBe(true);
  });

  it('restricts to the selected components or stack names, keeping the order', () => {
    expect(deploymentOrder(manifest, 'dev', ['worker-pools', 'dev-data'])).toEqual(['dev-data', 'dev-worker-pools']);
    expect(unselectedDependencies(manifest, ['dev-data', 'dev-worker-pools'])).toEqual(['dev-network', 'dev-executor']);
  });

  it('explains unknown environments, unknown stacks and cycles', () => {
    expect(() => deploymentOrder(manifest, 'qa')).toThrow(
      'No stacks for environment "qa" in the synthesized app; environments: dev, prod',
    );
    expect(() => deploymentOrder(manifest, 'dev', ['batch'])).toThrow(
      '"batch" is not a stack of dev; choose from: worker-pools, executor, data, network, registry',
    );
    const cyclic = { stacks: { 'x-a': { dependencies: ['x-b'] }, 'x-b': { dependencies: ['x-a'] } } };
    expect(() => deploymentOrder(cyclic, 'x')).toThrow(
      new DeployPlanError('Stacks depend on each other in a cycle: x-a -> x-b -> x-a'),
    );
    expect(environmentsIn(manifest)).toEqual(['dev', 'prod']);
  });
});
