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

    it("long-polls one workload's events alone: others' changes neither answer nor fill the page", async () => {
      const submit = async (key: string) =>
        (
          await app.inject({
            method: 'POST',
            url: '/v1/workloads',
            headers: admin,
            payload: { key, command: ['true'] },
          })
        ).json().id as string;
      const mine = await submit('feed-mine');
      await new Promise((r) => setTimeout(r, 300)); // numbered
      const all = (await app.inject({ url: '/v1/events?after=0&limit=10000', headers: admin })).json();
      const own = (
        await app.inject({ url: `/v1/events?after=0&limit=10000&workloadId=${mine}`, headers: admin })
      ).json();
      expect(own.events.length).toBeGreaterThan(0);
      expect(own.events.every((e: { workloadId: string }) => e.workloadId === mine)).toBe(true);
      expect(all.events.length).toBeGreaterThan(own.events.length);
      // Parked on its own workload: another submission does not answer it, its own cancellation does.
      const pending = app.inject({
        url: `/v1/events?after=${own.last}&waitMs=8000&workloadId=${mine}`,
        headers: admin,
      });
      let answered = false;
      void pending.then(() => {
        answered = true;
      });
      await submit('feed-other');
      await new Promise((r) => setTimeout(r, 500));
      expect(answered).toBe(false);
      await app.inject({ method: 'POST', url: `/v1/workloads/${mine}/cancel`, headers: admin });
      const res = (await pending).json();
      expect(res.events.map((e: { workloadId: string; state: string }) => [e.workloadId, e.state])).toEqual([
        [mine, 'cancelled'],
      ]);
      const bad = await app.inject({ url: '/v1/events?workloadId=nope', headers: admin });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().details).toEqual([
        { field: 'querystring.workloadId', rule: 'workloadId must be a workload id (a UUID)' },
      ]);
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

    describe('hostile input: a 400 naming the field and the rule, never a 500, nothing stored', () => {
      const workloadCount = async () =>
        (await service.db.query<{ n: number }>('SELECT count(*)::int AS n FROM workloads')).rows[0]!.n;
      const post = (url: string, payload: unknown) =>
        app.inject({
          method: 'POST',
          url,
          headers: { ...admin, 'content-type': 'application/json' },
          payload: JSON.stringify(payload),
        });
      const expectRejected = (res: Awaited<ReturnType<typeof post>>, field: string, rule: RegExp, status = 400) => {
        expect({ status: res.statusCode, body: res.json() }).toMatchObject({ status });
        const body = res.json();
        expect(body.message).toContain(field);
        expect(body.details).toEqual(
          expect.arrayContaining([expect.objectContaining({ field, rule: expect.stringMatching(rule) })]),
        );
      };
      const NUL = /must not contain NUL \(U\+0000\)/;
      const SURROGATE = /must not contain a lone surrogate/;

      it('refuses NUL and lone surrogates in every string of a submission, at any depth', async () => {
        const before = await workloadCount();
        const base = { key: 'hostile-1', command: ['true'] };
        const cases: Array<[Record<string, unknown>, string, RegExp]> = [
          [{ ...base, key: 'k\u0000' }, 'body.key', NUL],
          [{ ...base, key: 'k\ud800' }, 'body.key', SURROGATE],
          [{ ...base, command: ['echo', 'a\u0000b'] }, 'body.command.1', NUL],
          [{ ...base, command: ['echo', '\udfff'] }, 'body.command.1', SURROGATE],
          [{ ...base, image: 'img\u0000' }, 'body.image', NUL],
          [{ ...base, env: { A: 'x\u0000' } }, 'body.env.A', NUL],
          [{ ...base, env: { A: '\ud83d' } }, 'body.env.A', SURROGATE],
          [{ ...base, queue: 'q\u0000' }, 'body.queue', NUL],
          [{ ...base, execConfig: { a: { b: ['ok', 'bad\u0000'] } } }, 'body.execConfig.a.b.1', NUL],
          [{ ...base, execConfig: { a: { 'k\u0000': 1 } } }, 'body.execConfig.a.k\\u0000', /key must not contain NUL/],
          [
            { ...base, execConfig: { '\udc00': true } },
            'body.execConfig.\\udc00',
            /key must not contain a lone surrogate/,
          ],
        ];
        for (const [payload, field, rule] of cases) expectRejected(await post('/v1/workloads', payload), field, rule);
        const batch = await post('/v1/workloads/batch', {
          workloads: [base, { ...base, key: 'hostile-2', env: { B: '\u0000' } }],
        });
        expectRejected(batch, 'body.workloads.1.env.B', NUL);
        expect(await workloadCount()).toBe(before);
        // A well-formed pair (an emoji) is text, and is kept as it is.
        const emoji = await post('/v1/workloads', { ...base, key: 'hostile-emoji', command: ['echo', '\ud83d\ude00'] });
        expect(emoji.statusCode).toBe(201);
        expect(emoji.json().command).toEqual(['echo', '\u{1F600}']);
      });

      it('refuses them in token names, worker labels, maintenance comments, path and query parameters', async () => {
        expectRejected(await post('/v1/tokens', { name: 'n\u0000', scopes: ['read'] }), 'body.name', NUL);
        const register = await post('/v1/worker/register', {
          name: 'hostile-worker',
          queues: ['hostile'],
          concurrency: 1,
          runtime: 'process',
          version: 't',
          labels: { zone: 'a\ud800' },
        });
        expectRejected(register, 'body.labels.zone', SURROGATE);
        expect((await app.inject({ url: '/v1/workers/hostile-worker', headers: admin })).statusCode).toBe(404);
        expectRejected(
          await post('/v1/workers/http-worker/maintenance', { on: true, comment: 'kernel\u0000' }),
          'body.comment',
          NUL,
        );
        expectRejected(await app.inject({ url: '/v1/workloads/%00', headers: admin }), 'params.id', NUL);
        expectRejected(await app.inject({ url: '/v1/workers/a%00b', headers: admin }), 'params.name', NUL);
        expectRejected(await app.inject({ url: '/v1/workloads?queue=%00', headers: admin }), 'querystring.queue', NUL);
        expectRejected(
          await app.inject({ url: '/v1/workloads/x/logs?stream=std%00out', headers: admin }),
          'querystring.stream',
          NUL,
        );
        // A path that is not UTF-8 at all is named too, in the same error shape.
        expectRejected(await app.inject({ url: '/v1/workloads/%ff', headers: admin }), 'path', /percent-encoded UTF-8/);
      });

      it('refuses bodies that are not UTF-8 instead of rewriting them to U+FFFD (two keys could collide)', async () => {
        const before = await workloadCount();
        for (const bad of [Buffer.from([0xff]), Buffer.from([0xc3, 0x28]), Buffer.from([0xed, 0xa0, 0x80])]) {
          const payload = Buffer.concat([Buffer.from('{"key":"utf8-'), bad, Buffer.from('","command":["true"]}')]);
          const res = await app.inject({
            method: 'POST',
            url: '/v1/workloads',
            headers: { ...admin, 'content-type': 'application/json' },
            payload,
          });
          expectRejected(res, 'body', /must be valid UTF-8/);
          expect(res.json().message).toMatch(/never rewritten to U\+FFFD/);
        }
        const latin1 = await app.inject({
          method: 'POST',
          url: '/v1/workloads',
          headers: { ...admin, 'content-type': 'application/json; charset=iso-8859-1' },
          payload: '{"key":"latin","command":["true"]}',
        });
        expectRejected(latin1, 'body', /UTF-8/, 415);
        const text = await app.inject({
          method: 'POST',
          url: '/v1/workloads',
          headers: { ...admin, 'content-type': 'text/plain' },
          payload: 'hello',
        });
        expectRejected(text, 'body', /application\/json/, 415);
        expect(await workloadCount()).toBe(before);
      });

      it('bounds JSON nesting before parsing: 10,000 levels is a 400, not a stack overflow', async () => {
        const before = await workloadCount();
        const deep = await app.inject({
          method: 'POST',
          url: '/v1/workloads',
          headers: { ...admin, 'content-type': 'application/json' },
          payload: `${'['.repeat(10_000)}${']'.repeat(10_000)}`,
        });
        expectRejected(deep, 'body', /nesting depth at most 32/);
        let nested: unknown = 'leaf';
        for (let i = 0; i < 40; i++) nested = { n: nested };
        expectRejected(
          await post('/v1/workloads', { key: 'deep-1', command: ['true'], execConfig: { x: nested } }),
          'body',
          /nesting depth/,
        );
        expect(await workloadCount()).toBe(before);
        // Brackets inside strings are text, not nesting.
        const text = await post('/v1/workloads', { key: 'deep-ok', command: ['echo', '['.repeat(5_000)] });
        expect(text.statusCode).toBe(201);
        let fine: unknown = 'leaf';
        for (let i = 0; i < 20; i++) fine = { n: fine };
        expect(
          (await post('/v1/workloads', { key: 'deep-ok-2', command: ['true'], execConfig: { x: fine } })).statusCode,
        ).toBe(201);
      });

      it('range-checks numeric parameters against their column types', async () => {
        const w = (await post('/v1/workloads', { key: 'ranges-1', command: ['true'] })).json();
        expectRejected(
          await app.inject({ url: `/v1/workloads/${w.id}/logs?attempt=2147483648`, headers: admin }),
          'querystring.attempt',
          /attempt must be a whole number from 1 to 2147483647/,
        );
        const top = await app.inject({ url: `/v1/workloads/${w.id}/logs?attempt=2147483647`, headers: admin });
        expect(top.statusCode).toBe(200);
        expect(top.json()).toMatchObject({ attempt: 2147483647, data: '' });
        for (const [url, field] of [
          [`/v1/workloads/${w.id}/logs?offset=1e300`, 'querystring.offset'],
          [`/v1/workloads/${w.id}/logs?offset=-1`, 'querystring.offset'],
          ['/v1/workloads?limit=1001', 'querystring.limit'],
          ['/v1/workloads?limit=abc', 'querystring.limit'],
          ['/v1/events?after=9007199254740993', 'querystring.after'],
        ] as const) {
          expectRejected(await app.inject({ url, headers: admin }), field, /must be a whole number from/);
        }
      });

      it('answers a bad list cursor with a 400 that names `before` and its format', async () => {
        for (const before of [
          'garbage',
          '0000-01-01T00:00:00.000Z|00000000-0000-4000-8000-000000000000',
          '2026-02-30T00:00:00.000Z|00000000-0000-4000-8000-000000000000',
          '2026-01-01T00:00:00.000Z|nope',
        ]) {
          const res = await app.inject({ url: `/v1/workloads?before=${encodeURIComponent(before)}`, headers: admin });
          expectRejected(res, 'querystring.before', /<createdAt as ISO-8601 UTC with milliseconds>\|<id>/);
        }
        // The cursor the API hands out is accepted and pages on.
        const first = (await app.inject({ url: '/v1/workloads?limit=1', headers: admin })).json();
        expect(first.next).toEqual(expect.any(String));
        const second = await app.inject({
          url: `/v1/workloads?limit=1&before=${encodeURIComponent(first.next)}`,
          headers: admin,
        });
        expect(second.statusCode).toBe(200);
        expect(second.json().workloads[0].id).not.toBe(first.workloads[0].id);
      });

      it('refuses a batch that names one key twice, naming the repeat', async () => {
        const before = await workloadCount();
        const res = await post('/v1/workloads/batch', {
          workloads: [
            { key: 'dup-a', command: ['true'] },
            { key: 'dup-b', command: ['true'] },
            { key: 'dup-a', command: ['false'] },
          ],
        });
        expectRejected(res, 'body.workloads.2.key', /repeats workloads\.0\.key/);
        expect(await workloadCount()).toBe(before);
      });

      it('says what the body limit is, in bytes', async () => {
        const res = await post('/v1/workloads', { key: 'big-2', command: ['echo', 'x'.repeat(5 * 1024 * 1024)] });
        expectRejected(res, 'body', /at most 4194304 bytes/, 413);
        expect(res.json().message).toMatch(/larger than the limit of 4194304 bytes \(4 MiB\)/);
      });

      it('fetches a workload by a key of the longest allowed length (the router took 100 characters)', async () => {
        const key = `long-${'k'.repeat(507)}`;
        const created = await post('/v1/workloads', { key, command: ['true'] });
        expect(created.statusCode).toBe(201);
        const got = await app.inject({ url: `/v1/workloads/${encodeURIComponent(key)}`, headers: admin });
        expect(got.statusCode).toBe(200);
        expect(got.json().id).toBe(created.json().id);
        const tooLong = await app.inject({ url: `/v1/workloads/${'k'.repeat(513)}`, headers: admin });
        expectRejected(tooLong, 'params.id', /at most 512|Too big/i);
      });
    });

    it('documents every route with a response schema per status, and health as public', async () => {
      const doc = (await app.inject({ url: '/openapi.json', headers: admin })).json();
      expect(doc.security).toEqual([{ bearer: [] }]);
      for (const path of ['/healthz', '/readyz']) expect(doc.paths[path].get.security).toEqual([]);
      const operations = Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.entries(
          ops as Record<string, { security?: unknown[]; responses: Record<string, { content?: unknown }> }>,
        ).map(([method, op]) => ({ name: `${method.toUpperCase()} ${path}`, op })),
      );
      expect(operations.length).toBeGreaterThanOrEqual(24);
      for (const { name, op } of operations) {
        const statuses = Object.keys(op.responses);
        const success = statuses.filter((s) => s.startsWith('2'));
        expect({ name, success: success.length > 0 }).toEqual({ name, success: true });
        for (const s of statuses) {
          if (s !== '204')
            expect({ name, s, content: op.responses[s]!.content !== undefined }).toEqual({ name, s, content: true });
        }
        if (op.security === undefined) {
          expect({ name, statuses }).toEqual({ name, statuses: expect.arrayContaining(['400', '401', '403', '503']) });
        }
      }
      expect(doc.components.schemas.Workload.required).toEqual(expect.arrayContaining(['id', 'state', 'attempt']));
    });

    it('/readyz says only ready or not ready: no database text on a public endpoint', async () => {
      const other = await openService();
      const otherApi = await buildApi(other, pino({ level: 'silent' }));
      try {
        expect((await otherApi.inject({ url: '/readyz' })).json()).toEqual({ status: 'ready' });
        await other.db.close();
        const res = await otherApi.inject({ url: '/readyz' });
        expect(res.statusCode).toBe(503);
        expect(res.headers['retry-after']).toBe('1');
        expect(res.json()).toEqual({ status: 'unavailable' });
      } finally {
        await otherApi.close();
        await other.close().catch(() => undefined);
      }
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
