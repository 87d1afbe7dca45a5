import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { type Api, buildApi } from '../../src/api/server.ts';
import { parseServiceConfig } from '../../src/config.ts';
import { createLogger } from '../../src/lib/logging.ts';
import { ExecutorService } from '../../src/service/executor-service.ts';
import { PgliteDb } from '../../src/store/pglite.ts';
import { openTestService, TEST_ADMIN_TOKEN } from '../support/service.ts';

const SECRET = 'sentinel-secret-value-9f3b';
const ENV_VALUE = 'sentinel-env-value-71ac';

/**
 * Secrets stay where they belong (docs/architecture.md, "Secrets"): what each kind of token sees, where
 * secretEnv goes (the worker that runs it, nothing else), what the service log holds, and who can read the
 * embedded store's files.
 */
describe('secrets and what each caller sees', () => {
  let service: ExecutorService;
  let app: Api;
  const logged: string[] = [];
  const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

  beforeAll(async () => {
    service = await openTestService({ logLevel: 'trace' });
    const capture = new Writable({
      write(chunk, _encoding, done) {
        logged.push(chunk.toString());
        done();
      },
    });
    // The service's own logger configuration, at trace level, writing where the test can read it.
    const logger = createLogger('trace', capture);
    app = await buildApi(service, logger);
  });
  afterAll(async () => {
    await app.close();
    await service.close();
  });

  const token = async (scopes: string[], extra: Record<string, unknown> = {}) => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/tokens',
      headers: admin,
      payload: { name: scopes.join('+'), scopes, ...extra },
    });
    expect(res.statusCode).toBe(201);
    return { authorization: `Bearer ${res.json().token}` };
  };
  const workload = (key: string) => ({
    key,
    command: ['sh', '-c', 'echo "$SECRET_TOKEN" | wc -c'],
    queue: 'secrets',
    env: { PLAIN: ENV_VALUE },
    secretEnv: { SECRET_TOKEN: SECRET },
  });

  it('a submit-only token learns id and state, even when it resubmits someone else’s key', async () => {
    const submitter = await token(['submit']);
    const first = await app.inject({
      method: 'POST',
      url: '/v1/workloads',
      headers: submitter,
      payload: workload('s1'),
    });
    expect(first.statusCode).toBe(201);
    expect(Object.keys(first.json()).sort()).toEqual(['attempt', 'createdAt', 'id', 'key', 'state']);
    const replay = await app.inject({
      method: 'POST',
      url: '/v1/workloads',
      headers: submitter,
      payload: workload('s1'),
    });
    expect(replay.statusCode).toBe(200);
    expect(replay.body).not.toContain(ENV_VALUE);
    const other = await app.inject({
      method: 'POST',
      url: '/v1/workloads',
      headers: submitter,
      payload: { ...workload('s1'), env: { PLAIN: 'something else' } },
    });
    expect(other.statusCode).toBe(409);
    expect(other.json()).toMatchObject({ details: { field: 'key', differs: ['env'] } });
  });

  it('read tokens see env names but not values; no read returns secretEnv; admin sees env', async () => {
    await app.inject({ method: 'POST', url: '/v1/workloads', headers: admin, payload: workload('s2') });
    const reader = await token(['read']);
    for (const url of ['/v1/workloads/s2', '/v1/workloads?queue=secrets']) {
      const res = await app.inject({ url, headers: reader });
      expect(res.statusCode).toBe(200);
      expect(res.body).not.toContain(ENV_VALUE);
      expect(res.body).toContain('PLAIN');
      expect(res.body).not.toContain(SECRET);
      expect(res.body).not.toContain('secretEnv');
    }
    const asAdmin = await app.inject({ url: '/v1/workloads/s2', headers: admin });
    expect(asAdmin.json().env).toEqual({ PLAIN: ENV_VALUE });
    expect(asAdmin.body).not.toContain(SECRET);
    const feed = await app.inject({ url: '/v1/events?after=0', headers: admin });
    expect(feed.body).not.toContain(SECRET);
    const metrics = await app.inject({ url: '/metrics', headers: admin });
    expect(metrics.body).not.toContain(SECRET);
  });

  it('secretEnv reaches the worker that leases the workload, and only in the lease', async () => {
    await app.inject({
      method: 'POST',
      url: '/v1/workloads',
      headers: admin,
      payload: { ...workload('s3'), queue: 'lease-secrets' },
    });
    const enroll = await token(['enroll']);
    const reg = await app.inject({
      method: 'POST',
      url: '/v1/worker/register',
      headers: enroll,
      payload: { name: 'secret-worker', queues: ['lease-secrets'], concurrency: 1, runtime: 'process', version: 't' },
    });
    expect(reg.statusCode).toBe(201);
    expect(reg.body).not.toContain(SECRET);
    const worker = { authorization: `Bearer ${reg.json().token}` };
    const poll = await app.inject({
      method: 'POST',
      url: '/v1/worker/poll',
      headers: worker,
      payload: { freeSlots: 1, waitMs: 0 },
    });
    expect(poll.json().leases).toHaveLength(1);
    expect(poll.json().leases[0].secretEnv).toEqual({ SECRET_TOKEN: SECRET });
    // Stored encrypted: the plaintext is nowhere in the table.
    const { rows } = await service.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM workloads WHERE position($1::bytea IN convert_to(workloads::text, 'UTF8')) > 0`,
      [Buffer.from(SECRET)],
    );
    expect(rows[0]!.n).toBe(0);
  });

  it('an enrollment token limited to queues cannot register a worker for others (403 naming queues)', async () => {
    const limited = await token(['enroll'], { queues: ['gpu'] });
    const denied = await app.inject({
      method: 'POST',
      url: '/v1/worker/register',
      headers: limited,
      payload: { name: 'sneaky', queues: ['gpu', 'payments'], concurrency: 1, runtime: 'process', version: 't' },
    });
    expect(denied.statusCode).toBe(403);
    expect(denied.json()).toMatchObject({ details: { field: 'queues' } });
    expect(denied.json().message).toMatch(/payments/);
    const ok = await app.inject({
      method: 'POST',
      url: '/v1/worker/register',
      headers: limited,
      payload: { name: 'gpu-1', queues: ['gpu'], concurrency: 1, runtime: 'process', version: 't' },
    });
    expect(ok.statusCode).toBe(201);
  });

  it('the service log never carries a secret, an env value or a token, even for a failing insert', async () => {
    // A statement that fails in the database with the secret among its parameters.
    await expect(service.db.query('SELECT $1::int', [SECRET])).rejects.toThrow();
    try {
      await service.db.query('SELECT $1::int', [SECRET]);
    } catch (error) {
      app.log.error({ err: error }, 'request failed');
      expect(JSON.stringify(error)).not.toContain(SECRET);
    }
    await app.inject({
      method: 'POST',
      url: '/v1/workloads',
      headers: admin,
      payload: { ...workload('s4'), bogus: 1 },
    });
    const all = logged.join('');
    expect(all.length).toBeGreaterThan(0);
    expect(all).not.toContain(SECRET);
    expect(all).not.toContain(ENV_VALUE);
    expect(all).not.toContain(TEST_ADMIN_TOKEN.split('_')[2]);
  });
});

describe('the embedded store on disk', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'airfleet-perms-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const open = (tokens: Array<{ name: string; token: string; scopes: Array<'admin'> }>) =>
    ExecutorService.open(
      parseServiceConfig({ dataDir: dir, logLevel: 'silent', bootstrapTokens: tokens, backends: ['pool'] }),
      pino({ level: 'silent' }),
    );

  it('is the owner’s alone: directories 0700, files 0600', async () => {
    const service = await open([]);
    await service.close();
    const walk = (path: string): string[] => {
      const mode = statSync(path).mode & 0o777;
      const self = `${path.slice(dir.length) || '/'} ${mode.toString(8)}`;
      if (!statSync(path).isDirectory()) return [self];
      return [self, ...readdirSync(path).flatMap((name) => walk(join(path, name)))];
    };
    const modes = walk(dir);
    expect(modes.length).toBeGreaterThan(10);
    const wrong = modes.filter((line) => !/ (700|600)$/.test(line));
    expect(wrong).toEqual([]);
  });

  it('a token given by value that was revoked stays revoked across restarts', async () => {
    const byValue = {
      name: 'deploy-admin',
      token: 'aft_byvaluetoken001_byvalue-secret-0123456789',
      scopes: ['admin' as const],
    };
    const first = await open([byValue]);
    expect(await first.authenticate(byValue.token)).not.toBeNull();
    await first.tokens.revoke('byvaluetoken001');
    await first.close();
    const second = await open([byValue]);
    try {
      expect(await second.authenticate(byValue.token)).toBeNull();
    } finally {
      await second.close();
    }
  });

  it('PGlite errors do not carry the statement’s values', async () => {
    const db = await PgliteDb.open('memory://');
    try {
      const error = await db.query('SELECT $1::int', [SECRET]).catch((e: unknown) => e);
      expect(JSON.stringify(error)).not.toContain(SECRET);
    } finally {
      await db.close();
    }
  });
});
