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

/**
 * The selected stacks in dependency waves: every stack of a wave reads only from earlier waves (or from
 * stacks outside the selection, which must already exist), so the stacks of one wave can run together.
 */
export function dependencyWaves(manifest: ManifestLike, order: readonly string[]): string[][] {
  const waves: string[][] = [];
  const placed = new Map<string, number>();
  for (const name of order) {
    const deps = (manifest.stacks[name]?.dependencies ?? []).filter((d) => order.includes(d));
    const wave = Math.max(-1, ...deps.map((d) => placed.get(d) ?? -1)) + 1;
    placed.set(name, wave);
    if (!waves[wave]) waves[wave] = [];
    waves[wave].push(name);
  }
  return waves;
}

/** Stacks of the environment, outside the selection, that read from a selected stack (destroy them first). */
export function unselectedDependents(manifest: ManifestLike, env: string, selected: readonly string[]): string[] {
  const all = deploymentOrder(manifest, env);
  return all.filter(
    (name) => !selected.includes(name) && (manifest.stacks[name]?.dependencies ?? []).some((d) => selected.includes(d)),
  );
}

const REMOTE_OUTPUT =
  /data\.terraform_remote_state\.cross-stack-reference-input-([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)/g;

/** The upstream outputs a synthesized stack reads through remote state, by upstream stack name. */
export function upstreamReads(stackJson: unknown): Map<string, string[]> {
  const reads = new Map<string, Set<string>>();
  for (const [, stack, output] of JSON.stringify(stackJson).matchAll(REMOTE_OUTPUT)) {
    if (!reads.has(stack!)) reads.set(stack!, new Set());
    reads.get(stack!)!.add(output!);
  }
  return new Map([...reads].map(([stack, outputs]) => [stack, [...outputs].sort()]));
}

/**
 * What an output of a synthesized stack holds, for people: cdktf names cross-stack outputs
 * `cross-stack-output-<mangled address>`; their value says which attribute it is (`aws_vpc.vpc.id`).
 */
export function describeOutput(upstreamJson: unknown, output: string): string {
  const value = (upstreamJson as { output?: Record<string, { value?: unknown }> }).output?.[output]?.value;
  const address = typeof value === 'string' ? value.match(/^\$\{(.+)\}$/)?.[1] : undefined;
  return address ?? output;
}
