/**
 * What the dashboard needs from the service, over HTTP on embedded PGlite: its static files at /ui (public,
 * with a strict CSP), the cookie session (HttpOnly, SameSite=Strict, CSRF header; bearer auth unchanged),
 * drain and forget of workers, the feed head, a workload's own events, the backend filter, and dispatch
 * figures from the histograms.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { type Api, buildApi } from '../../src/api/server.ts';
import type { ExecutorService } from '../../src/service/executor-service.ts';
import { quantile } from '../../src/service/metrics-history.ts';
import { openTestService, TEST_ADMIN_TOKEN, waitFor } from '../support/service.ts';

let service: ExecutorService;
let app: Api;
let uiDir: string;
const admin = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
const CSRF = { 'x-airfleet-csrf': '1' };

beforeAll(async () => {
  uiDir = mkdtempSync(join(tmpdir(), 'airfleet-ui-'));
  mkdirSync(join(uiDir, 'assets'));
  writeFileSync(join(uiDir, 'index.html'), '<!doctype html><title>airfleet</title><script src="/ui/assets/app-1.js">');
  writeFileSync(join(uiDir, 'assets', 'app-1.js'), 'console.log(1)');
  writeFileSync(join(uiDir, 'favicon.svg'), '<svg/>');
  service = await openTestService({ uiFrameAncestors: ['http://127.0.0.1:*'] });
  app = await buildApi(service, pino({ level: 'silent' }), { ui: { dir: uiDir } });
});

afterAll(async () => {
  await app?.close();
  await service?.close();
  rmSync(uiDir, { recursive: true, force: true });
});

async function tokenWith(scopes: string[]): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/v1/tokens', headers: admin, payload: { name: 't', scopes } });
  expect(res.statusCode).toBe(201);
  return res.json().token;
}

async function login(token: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/v1/session', headers: { authorization: `Bearer ${token}` } });
  expect(res.statusCode).toBe(200);
  return String(res.headers['set-cookie']).split(';')[0]!;
}

async function registerWorker(name: string, queues = ['dash']) {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/worker/register',
    headers: admin,
    payload: { name, queues, concurrency: 2, runtime: 'process', version: 't' },
  });
  expect(res.statusCode).toBe(201);
  return { id: res.json().worker.id as string, auth: { authorization: `Bearer ${res.json().token}` } };
}

describe('the static files at /ui', () => {
  it('are served without a token, with a CSP that allows nothing from elsewhere', async () => {
    const redirect = await app.inject({ url: '/ui' });
    expect(redirect.statusCode).toBe(302);
    expect(redirect.headers.location).toBe('/ui/');
    const index = await app.inject({ url: '/ui/' });
    expect(index.statusCode).toBe(200);
    expect(index.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(index.body).toContain('<title>airfleet</title>');
    expect(index.headers['cache-control']).toBe('no-cache');
    const csp = String(index.headers['content-security-policy']);
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'self' http://127.0.0.1:*");
    expect(index.headers['x-content-type-options']).toBe('nosniff');
    const asset = await app.inject({ url: '/ui/assets/app-1.js' });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(asset.headers['cache-control']).toContain('immutable');
    expect((await app.inject({ url: '/ui/favicon.svg' })).headers['content-type']).toBe('image/svg+xml');
  });

  it('serve only the files of the build: no other path reaches the file system', async () => {
    for (const url of ['/ui/nope.js', '/ui/assets/%2e%2e/index.html', '/ui/assets/..%2f..%2fpackage.json']) {
      expect((await app.inject({ url })).statusCode).toBe(404);
    }
    // A dot segment leaves /ui: outside it every route needs a token, and none serves files.
    expect((await app.inject({ url: '/ui/../package.json' })).statusCode).toBe(401);
    expect((await app.inject({ url: '/ui/assets/missing.js' })).body).toMatch(/Open \/ui\/ instead/);
  });

  it('say how to build the dashboard when it is not built', async () => {
    const bare = await buildApi(service, pino({ level: 'silent' }), { ui: { dir: join(uiDir, 'none') } });
    try {
      const res = await bare.inject({ url: '/ui/' });
      expect(res.statusCode).toBe(503);
      expect(res.body).toMatch(/npm run build/);
    } finally {
      await bare.close();
    }
  });

  it('are left out of the OpenAPI document, while the session and dashboard reads are in it', async () => {
    const doc = (await app.inject({ url: '/openapi.json', headers: admin })).json();
    const paths = Object.keys(doc.paths);
    expect(paths.some((p) => p.startsWith('/ui'))).toBe(false);
    expect(paths).toEqual(
      expect.arrayContaining([
        '/v1/session',
        '/v1/events/head',
        '/v1/workloads/{id}/events',
        '/v1/metrics/dispatch',
        '/v1/workers/{name}/drain',
      ]),
    );
    expect(doc.paths['/v1/workers/{name}'].delete).toBeDefined();
    // The login and logout are authenticated like every route but health.
    for (const method of ['get', 'post', 'delete']) {
      expect(doc.paths['/v1/session'][method].security).toBeUndefined();
      expect(Object.keys(doc.paths['/v1/session'][method].responses)).toEqual(expect.arrayContaining(['401', '403']));
    }
  });
});

describe('the dashboard session', () => {
  it('turns a read token into an HttpOnly, SameSite=Strict cookie that authenticates reads', async () => {
    const token = await tokenWith(['read']);
    const bearer = { authorization: `Bearer ${token}` };
    const res = await app.inject({ method: 'POST', url: '/v1/session', headers: bearer });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ name: 't', scopes: ['read'] });
    const setCookie = String(res.headers['set-cookie']);
    expect(setCookie).toMatch(/^airfleet_session=aft_/);
    for (const attr of ['HttpOnly', 'SameSite=Strict', 'Path=/v1']) expect(setCookie).toContain(attr);
    expect(setCookie).not.toContain('Secure'); // plain HTTP here
    const cookie = setCookie.split(';')[0]!;
    expect((await app.inject({ url: '/v1/workers', headers: { cookie } })).statusCode).toBe(200);
    expect((await app.inject({ url: '/v1/session', headers: { cookie } })).json()).toEqual({
      name: 't',
      scopes: ['read'],
    });
    // Behind a TLS proxy the cookie is Secure.
    const tls = await app.inject({
      method: 'POST',
      url: '/v1/session',
      headers: { ...bearer, 'x-forwarded-proto': 'https' },
    });
    expect(String(tls.headers['set-cookie'])).toContain('Secure');
  });

  it('refuses what cannot be a dashboard login, naming the fix', async () => {
    const post = (headers: Record<string, string>) => app.inject({ method: 'POST', url: '/v1/session', headers });
    const as = (token: string) => ({ authorization: `Bearer ${token}` });
    const unknown = await post(as('aft_nosuchtoken000_xxxxxxxxxxxxxxxxxxxxxxxx'));
    expect(unknown.statusCode).toBe(401);
    expect(unknown.json().message).toMatch(/invalid or revoked/);
    expect(unknown.headers['set-cookie']).toBeUndefined();
    expect((await post(as('hello'))).statusCode).toBe(401);
    const submitOnly = await post(as(await tokenWith(['submit'])));
    expect(submitOnly.statusCode).toBe(403);
    expect(submitOnly.json().message).toMatch(/lacks the 'read' scope/);
    expect(submitOnly.headers['set-cookie']).toBeUndefined();
    const worker = await registerWorker('session-worker');
    const asWorker = await post(worker.auth);
    expect(asWorker.statusCode).toBe(403);
    expect(asWorker.headers['set-cookie']).toBeUndefined();
    // A form another site posts carries no Authorization header, and a token in the body is no login.
    const forged = await app.inject({ method: 'POST', url: '/v1/session', payload: { token: TEST_ADMIN_TOKEN } });
    expect(forged.statusCode).toBe(401);
    expect(forged.headers['set-cookie']).toBeUndefined();
    // Signed in already: without the CSRF header the cookie does not renew itself.
    const cookie = await login(TEST_ADMIN_TOKEN);
    expect((await post({ cookie })).statusCode).toBe(403);
    const renewed = await post({ cookie, ...CSRF });
    expect(renewed.statusCode).toBe(200);
    expect(String(renewed.headers['set-cookie']).split(';')[0]).toBe(cookie);
  });

  it('needs the CSRF header, and this origin, for every change it authenticates', async () => {
    const cookie = await login(TEST_ADMIN_TOKEN);
    await registerWorker('csrf-worker');
    const maintenance = (headers: Record<string, string>) =>
      app.inject({
        method: 'POST',
        url: '/v1/workers/csrf-worker/maintenance',
        headers: { cookie, ...headers },
        payload: { on: true, comment: 'csrf' },
      });
    const forged = await maintenance({});
    expect(forged.statusCode).toBe(403);
    expect(forged.json().message).toMatch(/x-airfleet-csrf: 1/);
    expect((await maintenance({ ...CSRF, 'sec-fetch-site': 'cross-site' })).statusCode).toBe(403);
    expect((await app.inject({ url: '/v1/workers/csrf-worker', headers: { cookie } })).json().maintenance).toBe(false);
    const ok = await maintenance({ ...CSRF, 'sec-fetch-site': 'same-origin' });
    expect(ok.statusCode).toBe(200);
    expect(ok.json().maintenance).toBe(true);
  });

  it("enforces the token's scopes, leaves bearer auth as it was and never serves the worker protocol", async () => {
    const cookie = await login(await tokenWith(['read']));
    const cancel = await app.inject({
      method: 'POST',
      url: '/v1/workers/csrf-worker/drain',
      headers: { cookie, ...CSRF },
    });
    expect(cancel.statusCode).toBe(403);
    expect(cancel.json().message).toMatch(/'admin' scope/);
    // An Authorization header wins over the cookie, whatever it holds.
    const adminCookie = await login(TEST_ADMIN_TOKEN);
    const badBearer = await app.inject({
      url: '/v1/workers',
      headers: { cookie: adminCookie, authorization: 'Bearer aft_nosuchtoken000_xxxxxxxxxxxxxxxxxxxxxxxx' },
    });
    expect(badBearer.statusCode).toBe(401);
    // Bearer requests need no CSRF header.
    expect((await app.inject({ url: '/v1/workers', headers: admin })).statusCode).toBe(200);
    const heartbeat = await app.inject({
      method: 'POST',
      url: '/v1/worker/heartbeat',
      headers: { cookie: adminCookie, ...CSRF },
      payload: { running: [] },
    });
    expect(heartbeat.statusCode).toBe(401);
  });

  it('ends with a logout that clears the cookie, which no other site can do', async () => {
    const cookie = await login(await tokenWith(['read']));
    const forged = await app.inject({ method: 'DELETE', url: '/v1/session', headers: { cookie } });
    expect(forged.statusCode).toBe(403);
    expect(forged.headers['set-cookie']).toBeUndefined();
    expect((await app.inject({ method: 'DELETE', url: '/v1/session', headers: CSRF })).statusCode).toBe(401);
    const out = await app.inject({ method: 'DELETE', url: '/v1/session', headers: { cookie, ...CSRF } });
    expect(out.statusCode).toBe(204);
    expect(String(out.headers['set-cookie'])).toMatch(/^airfleet_session=; .*Max-Age=0/);
  });
});

describe('worker administration for the dashboard', () => {
  it('drains a live worker: no new leases, the worker is told, a heartbeat cannot take it back', async () => {
    const worker = await registerWorker('drain-me', ['drainq']);
    const drained = await app.inject({ method: 'POST', url: '/v1/workers/drain-me/drain', headers: admin });
    expect(drained.statusCode).toBe(200);
    expect(drained.json()).toMatchObject({ state: 'draining', draining: true });
    const beat = await app.inject({
      method: 'POST',
      url: '/v1/worker/heartbeat',
      headers: worker.auth,
      payload: { running: [], draining: false },
    });
    expect(beat.statusCode).toBe(200);
    expect(beat.json().config).toMatchObject({ draining: true, state: 'draining' });
    await app.inject({
      method: 'POST',
      url: '/v1/workloads',
      headers: admin,
      payload: { key: 'drain-1', command: ['true'], queue: 'drainq' },
    });
    const poll = await app.inject({
      method: 'POST',
      url: '/v1/worker/poll',
      headers: worker.auth,
      payload: { freeSlots: 2, waitMs: 0 },
    });
    expect(poll.json().leases).toEqual([]);
    expect(poll.json().config.draining).toBe(true);
    const detail = (await app.inject({ url: '/v1/workloads/drain-1', headers: admin })).json();
    expect(detail.waiting).toMatch(/maintenance or draining/);
  });

  it('forgets only a worker that is gone, and names what to do otherwise', async () => {
    const worker = await registerWorker('forget-me');
    const live = await app.inject({ method: 'DELETE', url: '/v1/workers/forget-me', headers: admin });
    expect(live.statusCode).toBe(409);
    expect(live.json().message).toMatch(/only offline or lost workers can be forgotten; drain it first/);
    const reader = await tokenWith(['read']);
    expect(
      (
        await app.inject({
          method: 'DELETE',
          url: '/v1/workers/forget-me',
          headers: { authorization: `Bearer ${reader}` },
        })
      ).statusCode,
    ).toBe(403);
    await app.inject({ method: 'POST', url: '/v1/worker/deregister', headers: worker.auth });
    expect((await app.inject({ url: '/v1/workers/forget-me', headers: admin })).json().state).toBe('offline');
    const drainGone = await app.inject({ method: 'POST', url: '/v1/workers/forget-me/drain', headers: admin });
    expect(drainGone.statusCode).toBe(409);
    expect(drainGone.json().message).toMatch(/nothing to drain; forget it/);
    expect((await app.inject({ method: 'DELETE', url: '/v1/workers/forget-me', headers: admin })).statusCode).toBe(204);
    expect((await app.inject({ url: '/v1/workers/forget-me', headers: admin })).statusCode).toBe(404);
    expect((await app.inject({ method: 'DELETE', url: '/v1/workers/forget-me', headers: admin })).statusCode).toBe(404);
    // The name is free again.
    await registerWorker('forget-me');
  });
});

describe('reads for the live views', () => {
  it("gives the feed's head, and a workload's own events by id or key", async () => {
    const before = (await app.inject({ url: '/v1/events/head', headers: admin })).json().last as number;
    const sub = await app.inject({
      method: 'POST',
      url: '/v1/workloads',
      headers: admin,
      payload: { key: 'events-1', command: ['true'], queue: 'nobody-serves-this' },
    });
    const id = sub.json().id as string;
    const head = await waitFor(async () => {
      const last = (await app.inject({ url: '/v1/events/head', headers: admin })).json().last as number;
      return last > before ? last : null;
    });
    const feed = (await app.inject({ url: `/v1/events?after=${before}`, headers: admin })).json();
    expect(feed.last).toBe(head);
    for (const ref of [id, 'events-1']) {
      const own = await app.inject({ url: `/v1/workloads/${ref}/events`, headers: admin });
      expect(own.statusCode).toBe(200);
      expect(own.json().events).toEqual([expect.objectContaining({ workloadId: id, state: 'queued', attempt: 1 })]);
    }
    expect((await app.inject({ url: '/v1/workloads/no-such/events', headers: admin })).statusCode).toBe(404);
  });

  it('filters the workload list by backend', async () => {
    for (const [key, backend] of [
      ['by-backend-pool', 'pool'],
      ['by-backend-local', 'local'],
    ]) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/workloads',
        headers: admin,
        payload: { key, command: ['true'], queue: 'by-backend', backend },
      });
      expect(res.statusCode).toBe(201);
    }
    const keys = async (backend: string) =>
      (
        (await app.inject({ url: `/v1/workloads?queue=by-backend&backend=${backend}`, headers: admin })).json()
          .workloads as Array<{ key: string }>
      ).map((w) => w.key);
    expect(await keys('local')).toEqual(['by-backend-local']);
    expect(await keys('pool')).toEqual(['by-backend-pool']);
    const bad = await app.inject({ url: '/v1/workloads?backend=kubernetes', headers: admin });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().details[0].field).toBe('querystring.backend');
  });

  it('reports dispatch and start latency from the histograms', async () => {
    const worker = await registerWorker('dispatch-worker', ['dispatchq']);
    const sub = await app.inject({
      method: 'POST',
      url: '/v1/workloads',
      headers: admin,
      payload: { key: 'dispatch-1', command: ['true'], queue: 'dispatchq' },
    });
    const poll = await app.inject({
      method: 'POST',
      url: '/v1/worker/poll',
      headers: worker.auth,
      payload: { freeSlots: 2, waitMs: 5_000 },
    });
    expect(poll.json().leases.map((l: { key: string }) => l.key)).toEqual(['dispatch-1']);
    const report = await app.inject({
      method: 'POST',
      url: '/v1/worker/report',
      headers: worker.auth,
      payload: { workloadId: sub.json().id, attempt: 1, state: 'running' },
    });
    expect(report.statusCode).toBe(200);
    const history = (await app.inject({ url: '/v1/metrics/dispatch', headers: admin })).json();
    expect(history.intervalSeconds).toBe(10);
    expect(history.instance).toEqual(expect.any(String));
    expect(history.total.dispatchLatency.count).toBeGreaterThanOrEqual(1);
    expect(history.total.startLatency.count).toBeGreaterThanOrEqual(1);
    // The dispatch and the start may fall into two 10-second samples (a slow machine): count them all.
    const samples = history.samples as { dispatched: number; started: number; startLatency: { p50: number } }[];
    expect(samples.reduce((n, s) => n + s.dispatched + s.started, 0)).toBeGreaterThanOrEqual(2);
    expect(samples.findLast((s) => s.started > 0)!.startLatency.p50).toBeGreaterThanOrEqual(0);
    const metrics = (await app.inject({ url: '/metrics', headers: admin })).body;
    expect(metrics).toMatch(/airfleet_start_latency_seconds_count\{queue="dispatchq"\} 1/);
  });

  it('estimates quantiles inside the bucket, as histogram_quantile does', () => {
    const b = { bounds: [0.1, 1, Number.POSITIVE_INFINITY], cumulative: [50, 90, 100], count: 100, sum: 40 };
    expect(quantile(b, 0.5)).toBeCloseTo(0.1);
    expect(quantile(b, 0.7)).toBeCloseTo(0.55);
    expect(quantile(b, 0.99)).toBe(1); // in the +Inf bucket: the highest finite bound
    expect(quantile({ ...b, cumulative: [0, 0, 4], count: 4 }, 0.5)).toBe(1);
  });
});
