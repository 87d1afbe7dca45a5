import {
  blocks,
  describe,
  type GuardRule,
  isUnresolved,
  type JsonObject,
  NOT_APPLICABLE,
  type RuleResult,
  type SynthBlock,
  verdict,
} from './rule.ts';
import { isSecretName, secretMaterialIn } from './secret-patterns.ts';

/**
 * Secrets never pass through Terraform: not as literals in the configuration, not in user data or
 * container environments (readable by anyone with ec2:Describe* or ecs:Describe*), and not as attributes
 * Terraform keeps in its state. They live in Secrets Manager or SSM SecureString and are read at run time.
 */
export const plaintextSecrets: GuardRule = {
  id: 'AF-PLAINTEXT-SECRETS',
  description: 'No secret is written into the configuration, user data, a container environment or the state.',
  remedy:
    'Keep the secret in Secrets Manager or SSM SecureString and read it at run time (ECS/Batch `secrets`, a boot script, manage_master_user_password).',
  evaluate(block: SynthBlock): RuleResult {
    if (block.kind === 'provider') return verdict(providerFindings(block.type, block.config));
    if (block.kind === 'data') {
      const read = SECRET_READING_DATA[block.type];
      return read ? verdict(read(block.config)) : NOT_APPLICABLE;
    }
    if (block.kind !== 'resource') return NOT_APPLICABLE;
    const c = block.config;
    const stateful = STATEFUL_SECRETS[block.type];
    if (stateful) return verdict(stateful(c));
    switch (block.type) {
      case 'aws_launch_template':
      case 'aws_launch_configuration':
      case 'aws_instance':
        return verdict(userDataFindings(block.type, c));
      case 'aws_batch_job_definition':
        return verdict(containerFindings(c['container_properties'], 'container_properties'));
      case 'aws_ecs_task_definition':
        return verdict(containerFindings(c['container_definitions'], 'container_definitions'));
      case 'aws_lambda_function':
        return verdict(
          blocks(c['environment']).flatMap((e) => environmentMapFindings(e['variables'], 'environment.variables')),
        );
      case 'nomad_job':
        return verdict(nomadJobFindings(c));
      default:
        return NOT_APPLICABLE;
    }
  },
};

/** Resources whose secret lands in the Terraform state (or plan) whatever its source. */
const STATEFUL_SECRETS: Readonly<Record<string, (c: JsonObject) => string[]>> = {
  aws_db_instance: (c) => present(c, ['password'], 'use manage_master_user_password = true'),
  aws_rds_cluster: (c) => present(c, ['master_password'], 'use manage_master_user_password = true'),
  aws_secretsmanager_secret_version: (c) =>
    present(c, ['secret_string', 'secret_binary'], 'put the value into the secret outside Terraform'),
  aws_ssm_parameter: (c) =>
    c['type'] === 'String' || c['type'] === 'StringList'
      ? []
      : present(c, ['value', 'insecure_value'], 'create the SecureString outside Terraform or use value_wo'),
  aws_iam_access_key: () => ['creates an access key whose secret is stored in the state; use roles instead'],
  aws_iam_user_login_profile: () => ['creates a console password that is stored in the state'],
  nomad_acl_token: () => [
    'creates a Nomad ACL token whose secret_id is stored in the state; mint tokens from the role outside Terraform',
  ],
  random_password: () => ['generates a password that is stored in the state'],
  tls_private_key: () => ['generates a private key that is stored in the state'],
};

/**
 * Data sources whose result (the secret's value) Terraform writes into the state at every refresh, whoever
 * reads it later. The executor and the boot scripts read secrets at run time instead; ephemeral resources
 * (never stored) are not blocks this rule sees.
 */
const SECRET_READING_DATA: Readonly<Record<string, (c: JsonObject) => string[]>> = {
  aws_secretsmanager_secret_version: () => [
    'reads a secret value into the state; hand the secret ARN to whoever needs the value and read it there',
  ],
  aws_secretsmanager_random_password: () => ['generates a password that is stored in the state'],
  aws_kms_secrets: () => ['decrypts ciphertext into the state'],
  // A SecureString is decrypted into the state unless with_decryption is false (a String needs no decryption).
  aws_ssm_parameter: (c) =>
    c['with_decryption'] === false
      ? []
      : [
          'reads the parameter decrypted into the state (a SecureString ends up there); set with_decryption = false or read it at run time',
        ],
  nomad_acl_token: () => ["reads a Nomad ACL token's secret_id into the state"],
  nomad_variable: () => ['reads Nomad variable items (secrets) into the state'],
};

function present(config: JsonObject, keys: readonly string[], fix: string): string[] {
  return keys
    .filter((k) => config[k] !== undefined)
    .map((k) => `${k} is set, so the secret is kept in the state; ${fix}`);
}

const PROVIDER_SECRETS: Readonly<Record<string, readonly string[]>> = {
  aws: ['access_key', 'secret_key', 'token'],
  nomad: ['secret_id', 'key_pem', 'http_auth'],
  vault: ['token'],
};

function providerFindings(type: string, config: JsonObject): string[] {
  return (PROVIDER_SECRETS[type] ?? [])
    .filter((key) => config[key] !== undefined)
    .map((key) => `provider ${type} sets ${key}; credentials come from the environment (profile, role, NOMAD_TOKEN)`);
}

/**
 * User data is readable by anyone who may describe the instance, and it must be a literal so this rule can
 * read it at all: rendered at synth time, base64-encoded, with secrets fetched by the boot script.
 */
function userDataFindings(type: string, config: JsonObject): string[] {
  const findings: string[] = [];
  for (const key of ['user_data', 'user_data_base64']) {
    const value = config[key];
    if (value === undefined) continue;
    if (typeof value !== 'string' || isUnresolved(value)) {
      findings.push(
        `${key} is only known at apply time (${describe(value)}), so it cannot be checked for secrets; render it at synth time`,
      );
      continue;
    }
    const base64 = key === 'user_data_base64' || type === 'aws_launch_template';
    const text = base64 ? Buffer.from(value, 'base64').toString('utf8') : value;
    for (const what of secretMaterialIn(text)) findings.push(`${key} contains ${what}`);
  }
  return findings;
}

function containerFindings(value: unknown, field: string): string[] {
  if (value === undefined) return [];
  let parsed: unknown;
  try {
    parsed = typeof value === 'string' ? JSON.parse(value) : value;
  } catch {
    return [`${field} is not JSON that can be read at synth time (${describe(value)})`];
  }
  const containers = Array.isArray(parsed) ? parsed : [parsed];
  return containers.flatMap((container, i) => {
    if (container === null || typeof container !== 'object') return [];
    const where = Array.isArray(parsed) ? `${field}[${i}]` : field;
    const env = (container as JsonObject)['environment'];
    return Array.isArray(env) ? env.flatMap((entry) => envEntryFindings(entry, `${where}.environment`)) : [];
  });
}

function envEntryFindings(entry: unknown, where: string): string[] {
  if (entry === null || typeof entry !== 'object') return [];
  const { name, value } = entry as JsonObject;
  if (typeof name !== 'string') return [];
  if (isSecretName(name)) return [`${where} sets ${name} in plain text; pass it as a secret (valueFrom) instead`];
  if (typeof value === 'string') return secretMaterialIn(value).map((what) => `${where} ${name} contains ${what}`);
  return [];
}

function environmentMapFindings(value: unknown, where: string): string[] {
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value as JsonObject).flatMap(([name, v]) => envEntryFindings({ name, value: v }, where));
}

function nomadJobFindings(config: JsonObject): string[] {
  const findings: string[] = [];
  const jobspec = config['jobspec'];
  if (typeof jobspec === 'string') {
    for (const what of secretMaterialIn(jobspec)) findings.push(`jobspec contains ${what}`);
  }
  for (const hcl2 of blocks(config['hcl2'])) {
    findings.push(...environmentMapFindings(hcl2['vars'], 'hcl2.vars'));
  }
  return findings;
}
