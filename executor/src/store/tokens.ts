import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Queryable } from './db.ts';

export const SCOPES = ['submit', 'read', 'admin', 'enroll'] as const;
export type Scope = (typeof SCOPES)[number];

/**
 * API tokens look like `aft_<id>_<secret>`. Only a SHA-256 of the secret is stored: the secret has 256 bits
 * of entropy, so a slow password hash would add nothing but latency on every request.
 */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function parseToken(token: string): { prefix: string; id: string; secret: string } | null {
  const match = /^(aft|afw)_([A-Za-z0-9]{12,40})_([A-Za-z0-9_-]{20,100})$/.exec(token);
  if (!match) return null;
  return { prefix: match[1]!, id: match[2]!, secret: match[3]! };
}

export function secretMatches(secret: string, hash: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(hash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface ApiToken {
  id: string;
  name: string;
  scopes: Scope[];
  /** Enrollment tokens may be limited to queues: the workers they register serve only those. Null: any. */
  queues: string[] | null;
  createdAt: string;
  revokedAt: string | null;
}

export async function createApiToken(
  q: Queryable,
  name: string,
  scopes: readonly Scope[],
  queues: readonly string[] | null = null,
): Promise<{ token: string; record: ApiToken }> {
  const id = randomBytes(9).toString('hex');
  const secret = newSecret();
  const { rows } = await q.query<{ created_at: Date }>(
    'INSERT INTO api_tokens (id, name, hash, scopes, queues) VALUES ($1, $2, $3, $4::text[], $5::text[]) RETURNING created_at',
    [id, name, hashSecret(secret), scopes, queues],
  );
  return {
    token: `aft_${id}_${secret}`,
    record: {
      id,
      name,
      scopes: [...scopes],
      queues: queues ? [...queues] : null,
      createdAt: new Date(rows[0]!.created_at).toISOString(),
      revokedAt: null,
    },
  };
}

export async function findApiToken(
  q: Queryable,
  id: string,
): Promise<{ hash: string; scopes: Scope[]; name: string; queues: string[] | null } | null> {
  const { rows } = await q.query<{ hash: string; scopes: Scope[]; name: string; queues: string[] | null }>(
    'SELECT hash, scopes, name, queues FROM api_tokens WHERE id = $1 AND revoked_at IS NULL',
    [id],
  );
  return rows[0] ?? null;
}

export async function listApiTokens(q: Queryable): Promise<ApiToken[]> {
  const { rows } = await q.query<{
    id: string;
    name: string;
    scopes: Scope[];
    queues: string[] | null;
    created_at: Date;
    revoked_at: Date | null;
  }>('SELECT id, name, scopes, queues, created_at, revoked_at FROM api_tokens ORDER BY created_at');
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    scopes: r.scopes,
    queues: r.queues,
    createdAt: new Date(r.created_at).toISOString(),
    revokedAt: r.revoked_at ? new Date(r.revoked_at).toISOString() : null,
  }));
}

export async function revokeApiToken(q: Queryable, id: string): Promise<boolean> {
  const { rows } = await q.query(
    'UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id',
    [id],
  );
  return rows.length > 0;
}

export async function countApiTokens(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ n: number }>('SELECT count(*)::int AS n FROM api_tokens WHERE revoked_at IS NULL');
  return rows[0]?.n ?? 0;
}
