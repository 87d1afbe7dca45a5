import { randomBytes } from 'node:crypto';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Logger } from 'pino';
import { ConfigError } from '../errors.ts';
import { newSecret, type Scope } from '../store/tokens.ts';

/**
 * The deployment's API tokens in Secrets Manager (docs/deployment-secrets.md): the stacks create one secret
 * per token with no value (so no token is ever in Terraform state); the first executor to start fills each
 * empty one with a new token, and every instance registers the secrets' current values, hashed, like the
 * tokens given by value (bootstrapTokens). Clients read the same secrets: workers the enroll token, Airflow
 * the submit token, operators the admin token.
 */
export const TOKEN_SECRETS = {
  admin: { env: 'AIRFLEET_ADMIN_TOKEN_SECRET_ARN', scopes: ['admin'] },
  submit: { env: 'AIRFLEET_SUBMIT_TOKEN_SECRET_ARN', scopes: ['submit', 'read'] },
  enroll: { env: 'AIRFLEET_ENROLL_TOKEN_SECRET_ARN', scopes: ['enroll'] },
} as const satisfies Record<string, { env: string; scopes: Scope[] }>;

export type TokenSecretKind = keyof typeof TOKEN_SECRETS;

/**
 * The version id of the first value: two instances starting together both try to fill an empty secret with
 * this ClientRequestToken, Secrets Manager keeps the first and refuses the other's different value
 * (ResourceExistsException), and the loser reads the winner's.
 */
export const FIRST_VERSION_ID = 'airfleet-first-value-00000000000000000000';

/** A new API token, `aft_<id>_<secret>` (the format `airfleet token generate` prints). */
export function generateApiToken(): string {
  return `aft_${newSecret()
    .replace(/[^A-Za-z0-9]/g, '')
    .slice(0, 18)}_${newSecret()}`;
}

function isEmptySecret(error: unknown): boolean {
  // A secret with no version: GetSecretValue answers ResourceNotFoundException for the AWSCURRENT label.
  return (error as Error).name === 'ResourceNotFoundException';
}

/** The SDK's commands, loaded on first use: a service configured without secrets never pays for the SDK. */
const sdk = () => import('@aws-sdk/client-secrets-manager');

async function readValue(client: SecretsManagerClient, arn: string): Promise<string | undefined> {
  const { GetSecretValueCommand } = await sdk();
  try {
    const out = await client.send(new GetSecretValueCommand({ SecretId: arn }));
    const value = out.SecretString?.trim();
    return value ? value : undefined;
  } catch (error) {
    if (isEmptySecret(error)) return undefined;
    throw error;
  }
}

/** The token in one secret, filling the secret with a new token first if it has none. */
export function tokenFromSecret(client: SecretsManagerClient, arn: string, logger: Logger, kind: string) {
  return valueFromSecret(client, arn, logger, kind, generateApiToken);
}

/**
 * The environment variable naming the secret that holds the key sealing `secretEnv` at rest (32 bytes,
 * base64): every instance must use the same key, so it lives in Secrets Manager, filled on first start like
 * the tokens, and never in Terraform state.
 */
export const SECRET_KEY_SECRET_ENV = 'AIRFLEET_SECRET_KEY_SECRET_ARN';

/** The `secretEnv` key in its secret, filling the secret with 32 random bytes (base64) if it has none. */
export function secretKeyFromSecret(client: SecretsManagerClient, arn: string, logger: Logger) {
  return valueFromSecret(client, arn, logger, 'secret-key', () => randomBytes(32).toString('base64'));
}

/** A secret's value, filling it first with `make()` if it has none; two fillers at once agree (see above). */
async function valueFromSecret(
  client: SecretsManagerClient,
  arn: string,
  logger: Logger,
  kind: string,
  make: () => string,
): Promise<string> {
  const current = await readValue(client, arn);
  if (current) return current;
  const { PutSecretValueCommand } = await sdk();
  try {
    await client.send(
      new PutSecretValueCommand({
        SecretId: arn,
        SecretString: make(),
        ClientRequestToken: FIRST_VERSION_ID,
      }),
    );
    logger.info({ secret: arn, kind }, 'filled an empty secret with a new value');
  } catch (error) {
    if ((error as Error).name !== 'ResourceExistsException') throw error;
  }
  const filled = await readValue(client, arn);
  if (!filled) throw new ConfigError(`secret ${arn} (${kind}) is still empty after filling it`);
  return filled;
}

const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/;

/** A secret's ARN from the environment variable `name`, if set; anything else than an ARN is refused. */
function secretArnFrom(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const arn = env[name];
  if (!arn) return undefined;
  if (!SECRET_ARN.test(arn)) {
    throw new ConfigError(
      `${name}=${arn} is not a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)`,
    );
  }
  return arn;
}

/** The ARN of the `secretEnv` key's secret from the environment, if set (validated). */
export function secretKeySecretArn(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return secretArnFrom(env, SECRET_KEY_SECRET_ENV);
}

/** ARNs of the token secrets from the environment (`AIRFLEET_<KIND>_TOKEN_SECRET_ARN`). */
export function tokenSecretArns(env: NodeJS.ProcessEnv = process.env): Partial<Record<TokenSecretKind, string>> {
  const out: Partial<Record<TokenSecretKind, string>> = {};
  for (const [kind, spec] of Object.entries(TOKEN_SECRETS) as Array<
    [TokenSecretKind, (typeof TOKEN_SECRETS)[TokenSecretKind]]
  >) {
    const arn = secretArnFrom(env, spec.env);
    if (arn) out[kind] = arn;
  }
  return out;
}

/** Reads (and where empty, fills) every configured token secret; the tokens to register at start-up. */
export async function tokensFromSecrets(
  arns: Partial<Record<TokenSecretKind, string>>,
  client: SecretsManagerClient,
  logger: Logger,
): Promise<Array<{ name: string; token: string; scopes: Scope[] }>> {
  const out: Array<{ name: string; token: string; scopes: Scope[] }> = [];
  for (const [kind, arn] of Object.entries(arns) as Array<[TokenSecretKind, string]>) {
    const token = await tokenFromSecret(client, arn, logger, kind);
    out.push({ name: `secret-${kind}`, token, scopes: [...TOKEN_SECRETS[kind].scopes] });
  }
  return out;
}
