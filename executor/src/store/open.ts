import { chmodSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ServiceConfig } from '../config.ts';
import type { Db } from './db.ts';
import { PostgresDb } from './postgres.ts';

/**
 * Opens the configured store: PostgreSQL when a URL is given, otherwise the embedded PGlite database in
 * `<dataDir>/pgdata`. The embedded database's files hold everything, secrets' ciphertexts and the WAL among
 * them, so they are the owner's alone: the data directory is 0700 and its files 0600, for files PGlite writes
 * later as well as those an older version left readable.
 */
export async function openDatabase(config: ServiceConfig, logger: Logger): Promise<Db> {
  if (config.databaseUrl) {
    if (!config.databaseSecretArn)
      return new PostgresDb({ url: config.databaseUrl, poolSize: config.poolSize, logger });
    const { secretCredentials } = await import('./database-credentials.ts');
    const credentials = await secretCredentials(config.databaseSecretArn, logger);
    const { username } = await credentials.current();
    logger.info({ secret: config.databaseSecretArn, user: username }, 'database credentials from Secrets Manager');
    return new PostgresDb({ url: config.databaseUrl, poolSize: config.poolSize, logger, credentials, user: username });
  }
  const { PgliteDb } = await import('./pglite.ts'); // large; a PostgreSQL deployment never loads it
  if (config.dataDir.startsWith('memory://')) return PgliteDb.open(config.dataDir);
  // Files created from here on (PGlite's, the admin token, local runs) are the owner's only.
  process.umask(0o077);
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  chmodSync(config.dataDir, 0o700);
  const dir = join(config.dataDir, 'pgdata');
  const db = await PgliteDb.open(dir);
  restrict(dir);
  return db;
}

/** chmod -R go-rwx, for a tree written before the umask was set (or by a version that did not set it). */
function restrict(path: string): void {
  if (!existsSync(path)) return;
  const stat = statSync(path);
  if (stat.isDirectory()) {
    chmodSync(path, 0o700);
    for (const name of readdirSync(path)) restrict(join(path, name));
  } else if (stat.isFile()) {
    chmodSync(path, 0o600);
  }
}
