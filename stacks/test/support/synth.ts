import 'cdktf/lib/testing/adapters/jest.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Testing } from 'cdktf';
import type { IConstruct } from 'constructs';
import type { AirfleetStack } from '../../src/airfleet-stack.ts';
import { type AirfleetAppOptions, buildApp, type EnvironmentStacks } from '../../src/app.ts';

// The cdktf matchers (toHaveResourceWithProperties & co.) on jest's expect; the import above types them.
Testing.setupJest();

export interface SynthesizedStack {
  stack: AirfleetStack;
  /** `Testing.synth` output: what the matchers take. */
  json: string;
  /** The same, parsed, for assertions the matchers cannot express. */
  tf: TerraformJson;
  /** Error annotations, i.e. guard findings. */
  errors: string[];
}

export interface TerraformJson {
  terraform: { backend: Record<string, Record<string, unknown>>; required_providers: Record<string, unknown> } & Record<
    string,
    unknown
  >;
  provider?: Record<string, Record<string, unknown>[]>;
  resource?: Record<string, Record<string, Record<string, unknown>>>;
  data?: Record<string, Record<string, Record<string, unknown>>>;
  output?: Record<string, unknown>;
}

export interface SynthesizedEnvironment {
  stacks: EnvironmentStacks;
  byName: Map<string, SynthesizedStack>;
  /** One stack's synth by component, e.g. `get('batch')`; throws if the environment has no such stack. */
  get(component: string): SynthesizedStack;
}

export function errorAnnotations(root: IConstruct): string[] {
  return root.node
    .findAll()
    .flatMap((c) => c.node.metadata.filter((m) => m.type === '@cdktf/error').map((m) => String(m.data)));
}

/**
 * Builds one environment as `cdktf synth` would (every stack prepared first, so cross-stack references
 * resolve), then synthesizes each stack with validations on. Call once per test file and share the result.
 */
export function synthEnvironment(name: string, options: AirfleetAppOptions = {}): SynthesizedEnvironment {
  const outdir = mkdtempSync(join(tmpdir(), 'airfleet-synth-'));
  const built = buildApp({ only: [name], outdir, ...options });
  for (const stack of built.stacks) stack.prepareStack();
  const byName = new Map<string, SynthesizedStack>();
  for (const stack of built.stacks) {
    const json = Testing.synth(stack, true);
    byName.set(stack.stackName, {
      stack,
      json,
      tf: JSON.parse(json) as TerraformJson,
      errors: errorAnnotations(stack),
    });
  }
  const stacks = built.environments.get(name)!;
  return {
    stacks,
    byName,
    get(component: string) {
      const found = byName.get(`${name}-${component}`);
      if (!found) throw new Error(`${name} has no ${component} stack; it has ${[...byName.keys()].join(', ')}`);
      return found;
    },
  };
}

/** All resources of one type in a synthesized stack, by logical name. */
export function resources(tf: TerraformJson, type: string): Record<string, Record<string, unknown>> {
  return tf.resource?.[type] ?? {};
}

/** The only resource of a type, failing loudly when there are none or several. */
export function onlyResource(tf: TerraformJson, type: string): Record<string, unknown> {
  const all = Object.values(resources(tf, type));
  if (all.length !== 1) throw new Error(`expected exactly one ${type}, found ${all.length}`);
  return all[0]!;
}

/** Decodes a launch template's user data. */
export function userData(template: Record<string, unknown>): string {
  return Buffer.from(String(template['user_data']), 'base64').toString('utf8');
}
