import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError, InvalidInputError } from '../errors.ts';

/**
 * Write-only secrets of workloads (`secretEnv`), encrypted at rest with AES-256-GCM under a key the service is
 * given: `AIRFLEET_SECRET_KEY` (32 bytes, base64) or a key file; the embedded default makes one in its data
 * directory (`secret.key`, 0600). The workload's id is the additional authenticated data, so a ciphertext
 * copied onto another row does not decrypt. Plaintext exists only on the way to the worker or backend that
 * runs the attempt; no read endpoint, feed entry, log line or metric carries it.
 *
 * Idempotent resubmission compares secrets by an HMAC under the same key (never by value), so a different
 * secret under the same key is told apart without storing anything that reveals it.
 */
export class SecretBox {
  private readonly key: Buffer | null;
  private readonly why: string;

  private constructor(key: Buffer | null, why: string) {
    this.key = key;
    this.why = why;
  }

  static fromConfig(config: {
    secretKey?: string | undefined;
    secretKeyFile?: string | undefined;
    dataDir: string;
    databaseUrl?: string | undefined;
  }): SecretBox {
    if (config.secretKey) return new SecretBox(parseKey(config.secretKey, 'AIRFLEET_SECRET_KEY'), '');
    if (config.secretKeyFile) {
      if (!existsSync(config.secretKeyFile)) {
        throw new ConfigError(
          `secretKeyFile ${config.secretKeyFile} does not exist: write 32 random bytes, base64, into it (e.g. \`openssl rand -base64 32\`)`,
        );
      }
      return new SecretBox(parseKey(readFileSync(config.secretKeyFile, 'utf8').trim(), config.secretKeyFile), '');
    }
    if (config.dataDir.startsWith('memory://')) return new SecretBox(randomBytes(32), '');
    if (!config.databaseUrl) {
      // The embedded store: one instance, one data directory; the key lives beside the database, 0600.
      const file = join(config.dataDir, 'secret.key');
      if (!existsSync(file)) {
        mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
        writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
      }
      chmodSync(file, 0o600);
      return new SecretBox(parseKey(readFileSync(file, 'utf8').trim(), file), '');
    }
    return new SecretBox(
      null,
      'this service has no secret key: start it with AIRFLEET_SECRET_KEY (32 random bytes, base64; the same on every instance) or AIRFLEET_SECRET_KEY_FILE to accept secretEnv',
    );
  }

  get enabled(): boolean {
    return this.key !== null;
  }

  /** Refuses secrets when there is no key to protect them with (nothing is stored). */
  requireKey(field: string): void {
    if (!this.key) throw new InvalidInputError(`${field}: ${this.why}`, { field });
  }

  seal(workloadId: string, env: Record<string, string>): Buffer | null {
    if (Object.keys(env).length === 0) return null;
    if (!this.key) throw new InvalidInputError(`secretEnv: ${this.why}`, { field: 'secretEnv' });
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(workloadId));
    const body = Buffer.concat([cipher.update(JSON.stringify(env), 'utf8'), cipher.final()]);
    return Buffer.concat([Buffer.from([1]), iv, cipher.getAuthTag(), body]);
  }

  open(workloadId: string, sealed: Buffer | Uint8Array | null): Record<string, string> {
    if (!sealed || sealed.length === 0) return {};
    if (!this.key) throw new ConfigError(`a workload carries secrets but ${this.why}`);
    const data = Buffer.from(sealed);
    const decipher = createDecipheriv('aes-256-gcm', this.key, data.subarray(1, 13));
    decipher.setAAD(Buffer.from(workloadId));
    decipher.setAuthTag(data.subarray(13, 29));
    try {
      return JSON.parse(Buffer.concat([decipher.update(data.subarray(29)), decipher.final()]).toString('utf8'));
    } catch {
      throw new ConfigError(
        `the secrets of workload ${workloadId} do not decrypt: this instance has another secret key than the one that stored them`,
      );
    }
  }

  /** A keyed digest of the secrets, for telling two submissions apart; '' when there are none. */
  digest(env: Record<string, string>): string {
    const names = Object.keys(env).sort();
    if (names.length === 0) return '';
    const canonical = JSON.stringify(names.map((n) => [n, env[n]]));
    return createHmac('sha256', this.key ?? Buffer.alloc(32))
      .update(canonical)
      .digest('hex');
  }
}

function parseKey(text: string, where: string): Buffer {
  const key = Buffer.from(text, 'base64');
  if (key.length !== 32) {
    throw new ConfigError(
      `${where} must be 32 bytes in base64 (e.g. \`openssl rand -base64 32\`), got ${key.length} bytes`,
    );
  }
  return key;
}
