import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ServiceConfig } from '../config.ts';
import { ConfigError, NotFoundError } from '../errors.ts';
import type { Db } from '../store/db.ts';
import {
  type ApiToken,
  countApiTokens,
  createApiToken,
  findApiToken,
  hashSecret,
  listApiTokens,
  parseToken,
  revokeApiToken,
  type Scope,
  secretMatches,
} from '../store/tokens.ts';
import { workerAuth } from '../store/workers.ts';

export type Principal =
  | { kind: 'api'; tokenId: string; name: string; scopes: Scope[]; queues: string[] | null }
  | { kind: 'worker'; workerId: string };

const TOKEN_CACHE_MS = 10_000;

/**
 * Who is calling: API tokens (`aft_…`, with scopes) and worker tokens (`afw_…`, one per registered worker),
 * both stored only as hashes. Verified tokens are cached for a few seconds: at thousands of requests a
 * second, one lookup per request would cost more than the requests.
 */
export class TokenService {
  private readonly db: Db;
  private readonly config: ServiceConfig;
  private readonly logger: Logger;
  private readonly cache = new Map<string, { principal: Principal; hash: string; until: number }>();

  constructor(db: Db, config: ServiceConfig, logger: Logger) {
    this.db = db;
    this.config = config;
    this.logger = logger;
  }

  /**
   * Tokens given by value (a deployment's secrets) are stored hashed like any other; a token an operator
   * revoked stays revoked, even if the deployment still hands the same value in. On a first start with no
   * token at all, an admin token is made and written to `<dataDir>/admin.token` (0600) instead of a log.
   */
  async bootstrap(): Promise<void> {
    for (const t of this.config.bootstrapTokens) {
      const parsed = parseToken(t.token);
      if (parsed?.prefix !== 'aft') {
        throw new ConfigError(
          `bootstrap token '${t.name}' is not an airfleet API token (aft_<id>_<secret>); generate one with \`airfleet token generate\``,
        );
      }
      const { rows } = await this.db.query<{ revoked: boolean }>(
        `INSERT INTO api_tokens (id, name, hash, scopes) VALUES ($1, $2, $3, $4::text[])
         ON CONFLICT (id) DO UPDATE SET hash = EXCLUDED.hash, scopes = EXCLUDED.scopes
         RETURNING revoked_at IS NOT NULL AS revoked`,
        [parsed.id, t.name, hashSecret(parsed.secret), t.scopes],
      );
      if (rows[0]?.revoked) {
        this.logger.warn(
          { token: parsed.id, name: t.name },
          'a token given by value was revoked earlier and stays revoked: give the service a new one',
        );
      }
    }
    if ((await countApiTokens(this.db)) > 0) return;
    const { token } = await createApiToken(this.db, 'bootstrap-admin', ['admin']);
    mkdirSync(this.config.dataDir, { recursive: true, mode: 0o700 });
    const file = join(this.config.dataDir, 'admin.token');
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
    this.logger.info({ file }, 'created the first admin token; the CLI reads it from this file');
  }

  /** Resolves a bearer token to who is calling, or null. */
  async authenticate(token: string): Promise<Principal | null> {
    const parsed = parseToken(token);
    if (!parsed) return null;
    const cached = this.cache.get(parsed.id);
    if (cached && cached.until > Date.now()) return secretMatches(parsed.secret, cached.hash) ? cached.principal : null;
    let principal: Principal | null = null;
    let hash: string | null = null;
    if (parsed.prefix === 'aft') {
      const record = await findApiToken(this.db, parsed.id);
      if (record) {
        hash = record.hash;
        principal = {
          kind: 'api',
          tokenId: parsed.id,
          name: record.name,
          scopes: record.scopes,
          queues: record.queues,
        };
      }
    } else {
      const workerId = uuidFromCompact(parsed.id);
      const record = workerId ? await workerAuth(this.db, workerId) : null;
      if (record && workerId) {
        hash = record.tokenHash;
        principal = { kind: 'worker', workerId };
      }
    }
    if (!principal || !hash || !secretMatches(parsed.secret, hash)) return null;
    if (this.cache.size > 100_000) this.cache.clear();
    this.cache.set(parsed.id, { principal, hash, until: Date.now() + TOKEN_CACHE_MS });
    return principal;
  }

  /** A worker's token no longer holds (re-registered, lost, offline). */
  forgetWorker(workerId: string): void {
    this.cache.delete(workerId.replaceAll('-', ''));
  }

  create(name: string, scopes: Scope[], queues: string[] | null = null): Promise<{ token: string; record: ApiToken }> {
    return createApiToken(this.db, name, scopes, queues);
  }

  list(): Promise<ApiToken[]> {
    return listApiTokens(this.db);
  }

  async revoke(id: string): Promise<void> {
    if (!(await revokeApiToken(this.db, id))) throw new NotFoundError('token', id);
    this.cache.delete(id);
  }
}

function uuidFromCompact(compact: string): string | null {
  if (!/^[0-9a-f]{32}$/.test(compact)) return null;
  return `${compact.slice(0, 8)}-${compact.slice(8, 12)}-${compact.slice(12, 16)}-${compact.slice(16, 20)}-${compact.slice(20)}`;
}
