import type { JsonObject, SynthBlock } from './rule.ts';

function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Drops cdktf's `//` metadata so rules see only what Terraform reads. */
function withoutMetadata(config: JsonObject): JsonObject {
  const { '//': _metadata, ...rest } = config;
  return rest;
}

/** Splits one synthesized stack (`cdk.tf.json` contents) into the blocks the guard rules judge. */
export function synthBlocks(stack: unknown): SynthBlock[] {
  if (!isObject(stack)) return [];
  const found: SynthBlock[] = [];
  for (const kind of ['resource', 'data'] as const) {
    const section = stack[kind];
    if (!isObject(section)) continue;
    for (const [type, byName] of Object.entries(section)) {
      if (!isObject(byName)) continue;
      for (const [name, config] of Object.entries(byName)) {
        if (isObject(config)) found.push({ kind, type, name, config: withoutMetadata(config) });
      }
    }
  }
  const providers = stack['provider'];
  if (isObject(providers)) {
    for (const [type, configs] of Object.entries(providers)) {
      for (const config of Array.isArray(configs) ? configs : [configs]) {
        if (!isObject(config)) continue;
        const alias = typeof config['alias'] === 'string' ? config['alias'] : undefined;
        found.push({ kind: 'provider', type, ...(alias ? { alias } : {}), config: withoutMetadata(config) });
      }
    }
  }
  const terraform = stack['terraform'];
  const required =
    isObject(terraform) && isObject(terraform['required_providers']) ? terraform['required_providers'] : {};
  for (const [name, requirement] of Object.entries(required)) {
    found.push({ kind: 'required-provider', name, requirement });
  }
  // A provider that is used but not listed is one Terraform resolves on its own: any version, and a source
  // that terraform and tofu read differently. Report it as a requirement with nothing in it.
  for (const name of usedProviders(found)) {
    if (!(name in required)) found.push({ kind: 'required-provider', name, requirement: undefined });
  }
  return found;
}

/** Local names of the providers a stack uses: its provider blocks and its resource and data type prefixes. */
function usedProviders(blocks: readonly SynthBlock[]): Set<string> {
  const names = new Set<string>();
  for (const block of blocks) {
    if (block.kind === 'provider') names.add(block.type);
    if (block.kind === 'resource' || block.kind === 'data') {
      const explicit = block.config['provider'];
      const name = typeof explicit === 'string' ? explicit.split('.')[0] : block.type.split('_')[0];
      // terraform_remote_state and terraform_data come with Terraform itself.
      if (name && name !== 'terraform') names.add(name);
    }
  }
  return names;
}
