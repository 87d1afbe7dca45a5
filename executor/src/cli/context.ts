import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiClient } from '../client/api-client.ts';
import { ConfigError } from '../errors.ts';

export interface GlobalOptions {
  apiUrl?: string;
  token?: string;
  tokenFile?: string;
  dataDir?: string;
  json?: boolean;
}

export const DEFAULT_API_URL = 'http://127.0.0.1:8470';

/**
 * The token the CLI sends: --token, else --token-file, else AIRFLEET_TOKEN, else AIRFLEET_TOKEN_FILE (a file
 * holding it, e.g. written from the deployment's token secret), else the admin token that `airfleet serve`
 * left in its data directory on first start (so the embedded default needs no setup).
 */
export function resolveToken(options: GlobalOptions): string | undefined {
  if (options.token) return options.token;
  if (options.tokenFile) return readTokenFile(options.tokenFile, '--token-file');
  if (process.env.AIRFLEET_TOKEN) return process.env.AIRFLEET_TOKEN;
  // A file (a Docker or Swarm secret at /run/secrets/...): the token stays out of the environment, so out
  // of `docker inspect` and service specs.
  if (process.env.AIRFLEET_TOKEN_FILE) return readTokenFile(process.env.AIRFLEET_TOKEN_FILE, 'AIRFLEET_TOKEN_FILE');
  const dataDir = options.dataDir ?? process.env.AIRFLEET_DATA_DIR ?? join(process.cwd(), '.airfleet');
  const file = join(dataDir, 'admin.token');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  return undefined;
}

function readTokenFile(file: string, option: string): string {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new ConfigError(
      `${option} ${file} cannot be read (${(error as NodeJS.ErrnoException).code}); point it at the file holding the token`,
    );
  }
  if (!token) throw new ConfigError(`${option} ${file} is empty`);
  return token;
}

export function clientFrom(options: GlobalOptions): ApiClient {
  const url = options.apiUrl ?? process.env.AIRFLEET_API_URL ?? DEFAULT_API_URL;
  return new ApiClient(url, resolveToken(options));
}
