import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Logger } from 'pino';
import { ConfigError } from '../errors.ts';

/**
 * Database credentials read from a Secrets Manager secret by ARN (`AIRFLEET_DATABASE_SECRET_ARN`), JSON with
 * `username` and `password` as RDS and Secrets Manager rotation write them (docs/deployment-secrets.md).
 * The password is handed to every new connection through pg's `password` callback, from a cache; when the
 * server refuses a login (the secret rotated), {@link invalidate} drops the cache and the next connection
 * reads the secret again. Connections already open are unaffected by a rotation.
 */
export class SecretCredentials {
  readonly arn: string;
  private readonly client: SecretsManagerClient;
  private readonly logger: Logger;
  private cached: Promise<{ username: string; password: string }> | null = null;
  /** Reads since start; a rotation shows as one more. */
  reads = 0;

  constructor(client: SecretsManagerClient, arn: string, logger: Logger) {
    this.client = client;
    this.arn = arn;
    this.logger = logger;
  }

  /** The current username and password, read from the secret unless cached. */
  current(): Promise<{ username: string; password: string }> {
    this.cached ??= this.read().catch((error: unknown) => {
      this.cached = null;
      throw error;
    });
    return this.cached;
  }

  async password(): Promise<string> {
    return (await this.current()).password;
  }

  /** A login was refused: read the secret again for the next connection. */
  invalidate(): void {
    if (!this.cached) return;
    this.cached = null;
    this.logger.warn({ secret: this.arn }, 'PostgreSQL refused the login: reading the database secret again');
  }

  private async read(): Promise<{ username: string; password: string }> {
    const { GetSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
    const out = await this.client.send(new GetSecretValueCommand({ SecretId: this.arn }));
    this.reads++;
    let value: unknown;
    try {
      value = JSON.parse(out.SecretString ?? '');
    } catch {
      throw new ConfigError(
        `database secret ${this.arn} is not JSON: it must hold {"username": …, "password": …} (as RDS writes it)`,
      );
    }
    const { username, password } = (value ?? {}) as { username?: unknown; password?: unknown };
    if (typeof username !== 'string' || !username || typeof password !== 'string' || !password) {
      throw new ConfigError(`database secret ${this.arn} lacks a username or a password (keys "username", "password")`);
    }
    return { username, password };
  }
}

/** SQLSTATE of a refused login: invalid_password, invalid_authorization_specification. */
export function isAuthFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '28P01' || code === '28000';
}

/** Credentials from the secret `arn`, checked once now so a bad ARN or secret fails the start, not a request. */
export async function secretCredentials(arn: string, logger: Logger): Promise<SecretCredentials> {
  if (!/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/.test(arn)) {
    throw new ConfigError(
      `AIRFLEET_DATABASE_SECRET_ARN=${arn} is not a Secrets Manager secret ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>)`,
    );
  }
  const { SecretsManagerClient } = await import('@aws-sdk/client-secrets-manager');
  const credentials = new SecretCredentials(new SecretsManagerClient({}), arn, logger);
  await credentials.current();
  return credentials;
}
