/**
 * Which stacks `scripts/deploy.mjs` deploys, and in what order: pure functions over cdktf's manifest, so
 * the ordering is unit-tested rather than discovered during a deploy.
 */

export interface ManifestLike {
  stacks: Readonly<Record<string, { readonly dependencies?: readonly string[] }>>;
}

export class DeployPlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeployPlanError';
  }
}

/** Environments present in a manifest, from the `<env>-<component>` stack names. */
export function environmentsIn(manifest: ManifestLike): string[] {
  return [...new Set(Object.keys(manifest.stacks).map((name) => name.split('-')[0]!))];
}

/**
 * The environment's stacks in dependency order (each after everything it reads from), restricted to
 * `selection` when given. A selection entry is a component (`batch`) or a stack name (`staging-batch`).
 */
export function deploymentOrder(manifest: ManifestLike, env: string, selection?: readonly string[]): string[] {
  const prefix = `${env}-`;
  const names = Object.keys(manifest.stacks).filter((name) => name.startsWith(prefix));
  if (names.length === 0) {
    throw new DeployPlanError(
      `No stacks for environment "${env}" in the synthesized app; environments: ${environmentsIn(manifest).join(', ') || 'none'}`,
    );
  }
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      throw new DeployPlanError(`Stacks depend on each other in a cycle: ${[...path, name].join(' -> ')}`);
    }
    state.set(name, 'visiting');
    for (const dep of manifest.stacks[name]?.dependencies ?? []) {
      if (!names.includes(dep)) throw new DeployPlanError(`${name} depends on ${dep}, which is not a stack of ${env}`);
      visit(dep, [...path, name]);
    }
    state.set(name, 'done');
    order.push(name);
  };
  for (const name of names) visit(name, []);

  if (!selection || selection.length === 0) return order;
  const wanted = selection.map((entry) => {
    const name = entry.startsWith(prefix) ? entry : `${prefix}${entry}`;
    if (!names.includes(name)) {
      throw new DeployPlanError(
        `"${entry}" is not a stack of ${env}; choose from: ${names.map((n) => n.slice(prefix.length)).join(', ')}`,
      );
    }
    return name;
  });
  return order.filter((name) => wanted.includes(name));
}

/** Dependencies of the selected stacks that are not selected themselves (they must already be deployed). */
export function unselectedDependencies(manifest: ManifestLike, selected: readonly string[]): string[] {
  const deps = selected.flatMap((name) => manifest.stacks[name]?.dependencies ?? []);
  return [...new Set(deps)].filter((dep) => !selected.includes(dep));
}
