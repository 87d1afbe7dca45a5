import { SecretsmanagerSecret } from '@cdktf/provider-aws/lib/secretsmanager-secret/index.js';
import { Construct } from 'constructs';
import type { AirfleetStack } from '../airfleet-stack.ts';
import type { EnvironmentConfig } from '../config/schema.ts';
import type { PolicyStatement } from './iam.ts';

/**
 * The deployment's API tokens, one Secrets Manager secret each, created here with no value: Terraform never
 * sees a token, so none is in its state. The executor fills an empty one with a new token on its first start
 * and registers the current values (executor/src/service/token-secrets.ts); workers read the enroll token,
 * Airflow the submit token, operators the admin token.
 */
export const TOKEN_KINDS = ['admin', 'submit', 'enroll'] as const;
export type TokenKind = (typeof TOKEN_KINDS)[number];

/** The environment variable that hands the executor each secret's ARN. */
export const TOKEN_SECRET_ENV: Readonly<Record<TokenKind, string>> = {
  admin: 'AIRFLEET_ADMIN_TOKEN_SECRET_ARN',
  submit: 'AIRFLEET_SUBMIT_TOKEN_SECRET_ARN',
  enroll: 'AIRFLEET_ENROLL_TOKEN_SECRET_ARN',
};

/** `airfleet/<env>/<kind>-token`; the enroll token's name is configurable (`enrollTokenSecretName`). */
export function tokenSecretName(env: EnvironmentConfig, kind: TokenKind): string {
  return kind === 'enroll' ? env.enrollTokenSecretName : `airfleet/${env.name}/${kind}-token`;
}

/**
 * `airfleet/<env>/secret-key`: the key that seals workloads' `secretEnv` at rest, shared by every executor
 * instance. Created empty like the tokens; the executor fills it with 32 random bytes on its first start
 * (AIRFLEET_SECRET_KEY_SECRET_ARN, executor/src/service/token-secrets.ts).
 */
export const SECRET_KEY_ENV = 'AIRFLEET_SECRET_KEY_SECRET_ARN';
export const secretKeySecretName = (env: EnvironmentConfig) => `airfleet/${env.name}/secret-key`;

/** What the executor needs on its token and key secrets: read them, and fill an empty one (first start). */
export function tokenSecretStatements(stack: AirfleetStack): PolicyStatement[] {
  return [
    {
      Sid: 'ReadAndFillTokenSecrets',
      Action: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'],
      Resource: [...TOKEN_KINDS.map((kind) => tokenSecretName(stack.env, kind)), secretKeySecretName(stack.env)].map(
        (name) => stack.arn('secretsmanager', `secret:${name}-??????`),
      ),
    },
  ];
}

export class TokenSecrets extends Construct {
  readonly secrets: Record<TokenKind, SecretsmanagerSecret>;
  /** The secretEnv key (see SECRET_KEY_ENV): without one, a service on PostgreSQL refuses every secretEnv. */
  readonly secretKey: SecretsmanagerSecret;

  constructor(scope: AirfleetStack, id: string) {
    super(scope, id);
    const env = scope.env;
    this.secrets = Object.fromEntries(
      TOKEN_KINDS.map((kind) => [
        kind,
        new SecretsmanagerSecret(this, kind, {
          name: tokenSecretName(env, kind),
          description: `airfleet ${env.name}: the ${kind} API token, filled by the executor on its first start`,
          recoveryWindowInDays: env.production ? 30 : 0,
        }),
      ]),
    ) as Record<TokenKind, SecretsmanagerSecret>;
    this.secretKey = new SecretsmanagerSecret(this, 'secret-key', {
      name: secretKeySecretName(env),
      description: `airfleet ${env.name}: the key sealing workloads' secretEnv, filled by the executor on its first start`,
      // Losing it loses every sealed secretEnv still queued: a longer window than the tokens' in production.
      recoveryWindowInDays: env.production ? 30 : 0,
    });
  }

  /** Secret ARNs (tokens and the secretEnv key) by the executor's environment variable names. */
  environment(): Record<string, string> {
    return {
      ...Object.fromEntries(TOKEN_KINDS.map((kind) => [TOKEN_SECRET_ENV[kind], this.secrets[kind].arn])),
      [SECRET_KEY_ENV]: this.secretKey.arn,
    };
  }
}
