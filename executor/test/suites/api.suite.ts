import { createHash } from 'node:crypto';
import pino from 'pino';
import { type Api, buildApi } from '../../src/api/server.ts';
import type { ExecutorService } from '../../src/service/executor-service.ts';
import { type OpenService, TEST_ADMIN_TOKEN } from '../support/service.ts';

/** Runs against whatever store `openService` opens: PGlite in the unit tier, PostgreSQL in integration. */
export function apiSuite(openService: OpenService): void {
  describe('HTTP API', () => {
    let service: ExecutorService;
    let app: Api;
    const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };

    beforeAll(async () => {
      service = await openService();
      app = await buildApi(service, pino({ level: 'silent' }));
    });
    afterAll(async () => {
      await app.close();
      await service.close();
    });

    const tokenWith = async (scopes: string[]) => {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/tokens',
        headers: admin,
        payload: { name: scopes.join('+'), scopes },
      });
      expect(res.statusCode).toBe(201);
      return `Bearer ${res.json().token}`;
    };

    it('serves health without a token and nothing else', async () => {
      expect((await app.inject({ url: '/healthz' })).statusCode).toBe(200);
      expect((await app.inject({ url: '/readyz' })).json()).toMatchObject({ status: 'ready' });
      for (const url of ['/v1/workloads', '/metrics', '/openapi.json', '/v1/workers', '/v1/events']) {
        const res = await app.inject({ url });
        expect(res.statusCode).toBe(401);
        expect(res.json().message).toMatch(/Authorization: Bearer/);
      }
    });

    it('rejects unknown and malformed tokens with 401, and missing scopes with 403', async () => {
      const bad = await app.inject({
        url: '/v1/workloads',
        headers: { authorization: 'Bearer aft_nosuchtoken000_xxxxxxxxxxxxxxxxxxxxxxxx' },
      });
      expect(bad.statusCode).toBe(401);
      const garbage = await app.inject({ url: '/v1/workloads', headers: { authorization: 'Bearer hello' } });
      expect(garbage.statusCode).toBe(401);
      const reader = await tokenWith(['read']);
      const submit = await app.inject({
        method: 'POST',
        url: '/v1/workloads',
        headers: { authorization: reader },
        payload: { key: 'x', command: ['true'] },
      });
      expect(submit.statusCode).toBe(403);
      expect(submit.json().message).toMatch(/'submit' scope/);
    });

    it('answers bad input with 400 naming each field, and stores nothing', async () => {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/workloads',
        headers: admin,
        payload: { key: 'invalid-1', command: [], poolSlots: 0 },
      });
      expect(res.statusCode).toBe(400);
      const body = res.json();
      expect(body.error).toBe('invalid_input');
      expect(body.details).toEqual(
        expect.arrayContaining([
          { field: 'body.command', rule: 'command needs at least the program to run' },
          { field: 'body.poolSlots', rule: 'poolSlots must be at least 1' },
        ]),
      );
      expect((await app.inject({ url: '/v1/workloads/invalid-1', headers: admin })).statusCode).toBe(404);
    });

    it('refuses a body over the size limit', async () => {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/workloads',
        headers: admin,
        payload: { key: 'big', command: ['echo', 'x'.repeat(5 * 1024 * 1024)] },
      });
      expect(res.statusCode).toBe(413);
    });

    it('submits idempotently: 201 then 200 with the same workload', async () => {
      const payload = { key: 'api-idem', command: ['echo', 'hi'], queue: 'api' };
      const first = await app.inject({ method: 'POST', url: '/v1/workloads', headers: admin, payload });
      const second = await app.inject({ method: 'POST', url: '/v1/workloads', headers: admin, payload });
      expect(first.statusCode).toBe(201);
      expect(second.statusCode).toBe(200);
      expect(second.json().id).toBe(first.json().id);
    });

    it('runs the worker protocol over HTTP with per-worker tokens, stored only as hashes', async () => {
      const enroll = await tokenWith(['enroll']);
      const reg = await app.inject({
        method: 'POST',
        url: '/v1/worker/register',
        headers: { authorization: enroll },
        payload: { name: 'http-worker', queues: ['http'], concurrency: 1, runtime: 'process', version: 't' },
      });
      expect(reg.statusCode).toBe(201);
      const workerAuth = { authorization: `Bearer ${reg.json().token}` };
      const secret: string = reg.json().token.split('_').slice(2).join('_');
      const { rows } = await service.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM workers WHERE position($1 in token_hash) > 0 OR token_hash = $2`,
        [secret, createHash('sha256').update(secret).digest('hex')],
      );
      expect(rows[0]!.n).toBe(1); // the hash is there...
      const { rows: plain } = await service.db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM workers WHERE position($1 in token_hash) > 0`,
        [secret],
      );
      expect(plain[0]!.n).toBe(0); // ...and the secret is not

      // A worker token cannot act as an API token, nor an API token as a worker.
      expect((await app.inject({ url: '/v1/workloads', headers: workerAuth })).statusCode).toBe(403);
      expect(
        (await app.inject({ method: 'POST', url: '/v1/worker/poll', headers: admin, payload: { freeSlots: 1 } }))
          .statusCode,
      ).toBe(403);

      const submitted = await app.inject({
        method: 'POST',
        url: '/v1/workloads',
        headers: admin,
        payload: { key: 'http-1', command: ['echo'], queue: 'http' },
      });
      const poll = await app.inject({
        method: 'POST',
        url: '/v1/worker/poll',
        headers: workerAuth,
        payload: { freeSlots: 1, waitMs: 0 },
      });
      expect(poll.json().leases.map((l: { key: string }) => l.key)).toEqual(['http-1']);
      const id = submitted.json().id;
      const report = (state: string, extra = {}) =>
        app.inject({
          method: 'POST',
          url: '/v1/worker/report',
          headers: workerAuth,
          payload: { workloadId: id, attempt: 1, state, ...extra },
        });
      expect((await report('running')).statusCode).toBe(200);
      const log = await app.inject({
        method: 'POST',
        url: '/v1/worker/logs',
        headers: workerAuth,
        payload: {
          workloadId: id,
          attempt: 1,
          stream: 'stdout',
          offset: 0,
          data: Buffer.from('out\n').toString('base64'),
        },
      });
      expect(log.statusCode).toBe(200);
      expect(log.json()).toEqual({ length: 4 });
      expect((await report('succeeded', { exitCode: 0 })).json().state).toBe('succeeded');
      const stale = await app.inject({
        method: 'POST',
        url: '/v1/worker/report',
        headers: workerAuth,
        payload: { workloadId: id, attempt: 7, state: 'failed' },
      });
      expect(stale.statusCode).toBe(409);
      const logs = await app.inject({ url: `/v1/workloads/${id}/logs?stream=stdout`, headers: admin });
      expect(Buffer.from(logs.json().data, 'base64').toString()).toBe('out\n');
    });

    it('long-polls the change feed from a sequence number', async () => {
      // Let earlier tests' events be numbered first, so the parked poll below is woken by this submission.
      await new Promise((r) => setTimeout(r, 300));
      const before = (await app.inject({ url: '/v1/events?after=0&limit=10000', headers: admin })).json().last;
      const started = Date.now();
      const pending = app.inject({ url: `/v1/events?after=${before}&waitMs=5000`, headers: admin });
      await new Promise((r) => setTimeout(r, 50));
      await app.inject({
        method: 'POST',
        url: '/v1/workloads',
        headers: admin,
        payload: { key: 'feed-1', command: ['true'] },
      });
      const res = (await pending).json();
      expect(Date.now() - started).toBeLessThan(4_000);
      expect(res.events.map((e: { key: string; state: string }) => [e.key, e.state])).toContainEqual([
        'feed-1',
        'queued',
      ]);
      expect(res.events.every((e: { seq: number }) => e.seq > before)).toBe(true);
      expect(res.last).toBeGreaterThan(before);
    });

    it('publishes metrics and an OpenAPI document covering the routes', async () => {
      const metrics = await app.inject({ url: '/metrics', headers: admin });
      expect(metrics.body).toMatch(/airfleet_queue_depth\{queue="api",backend="pool",state="queued"\} 1/);
      expect(metrics.body).toMatch(/airfleet_workers\{state="idle"\}/);
      const doc = (await app.inject({ url: '/openapi.json', headers: admin })).json();
      expect(doc.openapi).toBe('3.1.0');
      expect(Object.keys(doc.paths)).toEqual(
        expect.arrayContaining([
          '/v1/workloads',
          '/v1/workloads/batch',
          '/v1/events',
          '/v1/worker/poll',
          '/v1/workers/{name}/maintenance',
        ]),
      );
      expect(
        doc.paths['/v1/workloads'].post.requestBody.content['application/json'].schema.properties.poolSlots,
      ).toBeDefined();
    });

    it('revoked tokens stop working', async () => {
      const created = await app.inject({
        method: 'POST',
        url: '/v1/tokens',
        headers: admin,
        payload: { name: 'tmp', scopes: ['read'] },
      });
      const { token, id } = created.json();
      expect((await app.inject({ url: '/v1/queues', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(
        200,
      );
      expect((await app.inject({ method: 'DELETE', url: `/v1/tokens/${id}`, headers: admin })).statusCode).toBe(204);
      expect((await app.inject({ url: '/v1/queues', headers: { authorization: `Bearer ${token}` } })).statusCode).toBe(
        401,
      );
    });
  });
}
