import { existsSync, readFileSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join, normalize } from 'node:path';
import type { NomadJob } from '../../../executor/src/backends/nomad/nomad-types.ts';
import { FakeApiError, type FakeCluster, type ScaleRequest } from './cluster.ts';
import { parseJobHcl } from './hcl.ts';
import { listDir } from './log-files.ts';
import type { FakeStore, Table } from './store.ts';
import type { TaskRunner } from './task-runner.ts';

export interface StreamFaults {
  /** Delay before each frame is written, ms (a slow stream). */
  delayMs: number;
  /** New streams answered 503 until this time (ms since epoch). */
  refuseUntil: number;
}

export interface ServerDeps {
  store: FakeStore;
  cluster: FakeCluster;
  runner: TaskRunner;
  /** ACL token SecretID required on every request but status; none: ACLs off. */
  token: string | null;
  heartbeatMs: number;
  faults: StreamFaults;
  streams: Set<ServerResponse>;
  /** Requests by `METHOD /v1/route` (ids cut off). */
  calls: Map<string, number>;
}

const json = (res: ServerResponse, status: number, body: unknown, index?: number) => {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    ...(index !== undefined
      ? { 'x-nomad-index': String(index), 'x-nomad-knownleader': 'true', 'x-nomad-lastcontact': '0' }
      : {}),
  });
  res.end(text);
};
const text = (res: ServerResponse, status: number, message: string) => {
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(message);
};

async function body(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks).toString();
  if (!raw) return {};
  try {
    return JSON.parse(raw);
  } catch {
    throw new FakeApiError(400, 'Request decode failed: invalid character');
  }
}

/** Seconds of a Nomad duration (`5m`, `10s`, `300ms`); blocking queries wait at most 10 minutes. */
function waitMs(value: string | null): number {
  if (!value) return 300_000;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value);
  if (!m) return 300_000;
  const n = Number(m[1]);
  return Math.min(600_000, m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000);
}

/**
 * The `filter` query parameter of Nomad's list endpoints (a go-bexpr expression on each listed object). The
 * fake reads the two forms airfleet sends, `<Field> matches "<regex>"` and `<Field> == "<value>"`, and
 * answers 400 to any other expression rather than ignoring it, as Nomad does to one it cannot parse.
 */
export function listFilter(expression: string | null): (item: object) => boolean {
  if (!expression) return () => true;
  const m = /^\s*([A-Za-z][A-Za-z0-9]*)\s+(matches|==)\s+"((?:[^"\\]|\\.)*)"\s*$/.exec(expression);
  if (!m) {
    throw new FakeApiError(
      400,
      `failed to read filter expression: the Nomad fake reads only <Field> matches "<regex>" and <Field> == "<value>", not ${expression}`,
    );
  }
  const [, field, op, quoted] = m as unknown as [string, string, string, string];
  const literal = quoted.replace(/\\(.)/g, '$1');
  const value = (item: object) => String((item as Record<string, unknown>)[field] ?? '');
  if (op === '==') return (item) => value(item) === literal;
  let pattern: RegExp;
  try {
    pattern = new RegExp(literal);
  } catch (error) {
    throw new FakeApiError(400, `failed to read filter expression: ${(error as Error).message}`);
  }
  return (item) => pattern.test(value(item));
}

/** THE NOMAD FAKE's HTTP API (routes and answers shaped as Nomad's documented HTTP API). */
export function handler(deps: ServerDeps) {
  const { store, cluster } = deps;
  const blocking = async (url: URL, table: Table) => {
    const index = Number(url.searchParams.get('index') ?? 0);
    if (index > 0) await store.waitFor(table, index, waitMs(url.searchParams.get('wait')));
  };
  const ns = (url: URL) => url.searchParams.get('namespace') || 'default';

  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const path = url.pathname;
    // A filtered list counts apart, so tests can tell which lists were asked for everything.
    const filtered = url.searchParams.has('filter') ? ' filtered' : '';
    const route = `${req.method} ${path.replace(/^(\/v1\/[a-z]+(?:\/[a-z]+)?)\/.*$/, '$1')}${filtered}`;
    deps.calls.set(route, (deps.calls.get(route) ?? 0) + 1);
    try {
      if (path === '/v1/status/leader') return json(res, 200, '127.0.0.1:4647');
      if (deps.token) {
        const given = req.headers['x-nomad-token'] ?? req.headers.authorization?.replace(/^Bearer /, '');
        if (given !== deps.token) return text(res, 403, 'Permission denied');
      }
      if (path === '/v1/acl/token/self') {
        if (!deps.token) return text(res, 400, 'ACL support disabled');
        return json(res, 200, {
          AccessorID: '7c1b7f4e-0000-4000-8000-000000000001',
          SecretID: deps.token,
          Name: 'airfleet fake management token',
          Type: 'management',
          Policies: null,
          Global: true,
        });
      }
      if (path === '/v1/agent/self') {
        return json(res, 200, {
          config: { Region: 'global', Datacenter: 'dc1', Version: { Version: '1.9.0-fake' } },
          member: { Name: 'fake' },
        });
      }
      let m = /^\/v1\/namespace\/([^/]+)$/.exec(path);
      if (m) {
        const name = decodeURIComponent(m[1]!);
        if (!['default', ...cluster.namespaces].includes(name)) return text(res, 404, 'namespace not found');
        return json(res, 200, { Name: name, Description: '', CreateIndex: 1, ModifyIndex: 1 }, 1);
      }
      if (path === '/v1/nodes') {
        return json(
          res,
          200,
          cluster.nodes.map((n) => ({
            ID: n.ID,
            Name: n.Name,
            Datacenter: n.Datacenter,
            NodePool: n.NodePool,
            Status: n.Status,
          })),
          store.index,
        );
      }
      if (path === '/v1/jobs/parse' && req.method !== 'GET') {
        const b = (await body(req)) as { JobHCL?: string };
        if (!b.JobHCL) return text(res, 400, 'error parsing: JobHCL is empty');
        return json(res, 200, await parseJobHcl(b.JobHCL));
      }
      if (path === '/v1/jobs' && (req.method === 'PUT' || req.method === 'POST')) {
        const b = (await body(req)) as { Job?: NomadJob; EnforceIndex?: boolean; JobModifyIndex?: number };
        if (!b.Job?.ID) return text(res, 400, 'Job ID does not match name');
        if (!b.Job.TaskGroups?.length) return text(res, 500, '1 error occurred:\n\t* Missing job task groups');
        b.Job.Namespace ||= ns(url);
        const done = cluster.register(b.Job, {
          enforceIndex: Boolean(b.EnforceIndex),
          jobModifyIndex: b.JobModifyIndex ?? 0,
        });
        return json(
          res,
          200,
          {
            EvalID: done.evalId,
            EvalCreateIndex: done.index,
            JobModifyIndex: done.index,
            Warnings: '',
            Index: done.index,
            LastContact: 0,
            KnownLeader: false,
          },
          done.index,
        );
      }
      if (path === '/v1/jobs' && req.method === 'GET') {
        await blocking(url, 'jobs');
        const prefix = url.searchParams.get('prefix') ?? '';
        const meta = url.searchParams.get('meta') === 'true';
        const list = [...store.jobs.values()]
          .filter((j) => j.Namespace === ns(url) && j.ID!.startsWith(prefix))
          .map((j) => ({
            ID: j.ID,
            Name: j.Name,
            Namespace: j.Namespace,
            Type: j.Type,
            Priority: j.Priority,
            Status: j.Status,
            Stop: j.Stop,
            SubmitTime: j.SubmitTime,
            CreateIndex: j.CreateIndex,
            ModifyIndex: j.ModifyIndex,
            JobModifyIndex: j.JobModifyIndex,
            ...(meta ? { Meta: j.Meta ?? null } : {}),
          }));
        return json(res, 200, list, store.tables.jobs);
      }
      m = /^\/v1\/job\/([^/]+)(?:\/(allocations|evaluations|scale))?$/.exec(path);
      if (m) {
        const id = decodeURIComponent(m[1]!);
        const sub = m[2];
        const key = cluster.key(ns(url), id);
        if (!sub && req.method === 'DELETE') {
          const done = cluster.deregister(ns(url), id, url.searchParams.get('purge') === 'true');
          if (!done) return text(res, 404, 'job not found');
          return json(
            res,
            200,
            { EvalID: done.evalId, EvalCreateIndex: done.index, JobModifyIndex: done.index, Index: done.index },
            done.index,
          );
        }
        if (sub === 'scale' && req.method !== 'GET') {
          const b = (await body(req)) as ScaleRequest;
          if (b.Count !== undefined && b.Count !== null && !Number.isInteger(b.Count)) {
            return text(
              res,
              400,
              `Request decode failed: json: cannot unmarshal ${typeof b.Count} into Go struct field ScalingRequest.Count of type int64`,
            );
          }
          const done = cluster.scale(ns(url), id, b);
          return json(
            res,
            200,
            {
              ...(done.evalId ? { EvalID: done.evalId, EvalCreateIndex: done.evalIndex } : {}),
              Index: done.index,
              JobModifyIndex: done.jobModifyIndex,
              KnownLeader: false,
              LastContact: 0,
              Warnings: '',
            },
            done.index,
          );
        }
        const job = store.jobs.get(key);
        if (!job) return text(res, 404, 'job not found');
        if (!sub) {
          await blocking(url, 'jobs');
          return json(res, 200, store.jobs.get(key), store.tables.jobs);
        }
        if (sub === 'scale') {
          await blocking(url, 'jobs');
          // Placed, Healthy and Unhealthy come from the job's deployment, which the fake does not run: Nomad
          // answers 0 for a job without one. Running is the job summary's: allocations running now.
          return json(
            res,
            200,
            {
              JobCreateIndex: job.CreateIndex,
              JobID: id,
              Namespace: job.Namespace,
              JobModifyIndex: job.JobModifyIndex,
              JobStopped: Boolean(job.Stop),
              TaskGroups: Object.fromEntries(
                (job.TaskGroups ?? []).map((g) => [
                  g.Name,
                  {
                    Desired: g.Count ?? 1,
                    Events: cluster.scalingEvents(job.Namespace ?? 'default', id, g.Name ?? ''),
                    Healthy: 0,
                    Placed: 0,
                    Running: countRunning(store, id, g.Name!, job.Namespace ?? 'default'),
                    Unhealthy: 0,
                  },
                ]),
              ),
            },
            store.tables.jobs,
          );
        }
        if (sub === 'allocations') {
          await blocking(url, 'allocs');
          return json(
            res,
            200,
            [...store.allocs.values()].filter((a) => a.JobID === id && a.Namespace === job.Namespace),
            store.tables.allocs,
          );
        }
        await blocking(url, 'evals');
        return json(
          res,
          200,
          [...store.evals.values()].filter((e) => e.JobID === id && e.Namespace === job.Namespace),
          store.tables.evals,
        );
      }
      if (path === '/v1/allocations') {
        const wanted = listFilter(url.searchParams.get('filter'));
        await blocking(url, 'allocs');
        const all = ns(url) === '*';
        return json(
          res,
          200,
          [...store.allocs.values()].filter((a) => (all || a.Namespace === ns(url)) && wanted(a)),
          store.tables.allocs,
        );
      }
      if (path === '/v1/evaluations') {
        const wanted = listFilter(url.searchParams.get('filter'));
        await blocking(url, 'evals');
        const all = ns(url) === '*';
        return json(
          res,
          200,
          [...store.evals.values()].filter((e) => (all || e.Namespace === ns(url)) && wanted(e)),
          store.tables.evals,
        );
      }
      m = /^\/v1\/allocation\/([^/]+)$/.exec(path);
      if (m) {
        const a = store.allocs.get(m[1]!);
        return a ? json(res, 200, a, store.tables.allocs) : text(res, 404, 'alloc not found');
      }
      m = /^\/v1\/evaluation\/([^/]+)$/.exec(path);
      if (m) {
        const e = store.evals.get(m[1]!);
        return e ? json(res, 200, e, store.tables.evals) : text(res, 404, 'eval not found');
      }
      if (path === '/v1/event/stream') return stream(deps, url, req, res);
      m = /^\/v1\/client\/fs\/(ls|cat|readat|logs|stat)\/([^/]+)$/.exec(path);
      if (m) return fs(deps, m[1]!, m[2]!, url, res);
      m = /^\/v1\/var\/(.+)$/.exec(path);
      if (m) {
        const varPath = decodeURIComponent(m[1]!);
        const key = `${ns(url)}/${varPath}`;
        if (req.method === 'GET') {
          const v = store.vars.get(key);
          return v ? json(res, 200, v, v.ModifyIndex) : text(res, 404, 'variable not found');
        }
        if (req.method === 'DELETE') {
          store.vars.delete(key);
          const index = store.next('vars');
          store.emit('change');
          return json(res, 200, null, index);
        }
        const b = (await body(req)) as { Items?: Record<string, string> };
        if (!b.Items || Object.keys(b.Items).length === 0)
          return text(res, 400, 'variable missing required Items object');
        const index = store.next('vars');
        const existing = store.vars.get(key);
        const v = {
          Namespace: ns(url),
          Path: varPath,
          Items: b.Items,
          CreateIndex: existing?.CreateIndex ?? index,
          ModifyIndex: index,
          CreateTime: existing?.CreateTime ?? Date.now() * 1e6,
          ModifyTime: Date.now() * 1e6,
        };
        store.vars.set(key, v);
        store.emit('change');
        // Like Nomad, the answer to a write holds the metadata, not the items.
        const { Items: _items, ...meta } = v;
        return json(res, 200, meta, index);
      }
      if (path === '/v1/vars') {
        const prefix = url.searchParams.get('prefix') ?? '';
        return json(
          res,
          200,
          [...store.vars.values()]
            .filter((v) => v.Namespace === ns(url) && v.Path.startsWith(prefix))
            .map(({ Items: _i, ...meta }) => meta),
          store.tables.vars,
        );
      }
      return text(res, 404, `Invalid URL path: ${path}`);
    } catch (error) {
      if (error instanceof FakeApiError) return text(res, error.status, error.message);
      return text(res, 500, (error as Error).message);
    }
  };
}

function countRunning(store: FakeStore, id: string, group: string, namespace: string): number {
  return [...store.allocs.values()].filter(
    (a) => a.JobID === id && a.Namespace === namespace && a.TaskGroup === group && a.ClientStatus === 'running',
  ).length;
}

/** `/v1/event/stream`: ndjson frames from `index` on (the closest still buffered), `{}` as heartbeat. */
function stream(deps: ServerDeps, url: URL, req: IncomingMessage, res: ServerResponse): void {
  if (Date.now() < deps.faults.refuseUntil) {
    text(res, 503, 'event broker unavailable');
    return;
  }
  const from = Number(url.searchParams.get('index') ?? 0);
  const namespace = url.searchParams.get('namespace') || 'default';
  const topics = url.searchParams.getAll('topic').map((t) => {
    const [topic, key = '*'] = t.split(':');
    return { topic: topic!, key };
  });
  const wanted = (e: { Topic: string; Key: string; Namespace?: string; FilterKeys?: string[] | null }) =>
    (namespace === '*' || e.Namespace === namespace) &&
    (topics.length === 0 ||
      topics.some(
        (t) =>
          (t.topic === '*' || t.topic === e.Topic) &&
          (t.key === '*' || t.key === e.Key || (e.FilterKeys ?? []).includes(t.key)),
      ));
  res.writeHead(200, { 'content-type': 'application/json' });
  deps.streams.add(res);
  let chain = Promise.resolve();
  const send = (frame: { Index: number; Events: Array<{ Topic: string; Key: string; Namespace?: string }> }) => {
    const events = frame.Events.filter(wanted);
    if (events.length === 0) return;
    chain = chain.then(async () => {
      if (deps.faults.delayMs > 0) await new Promise((r) => setTimeout(r, deps.faults.delayMs));
      if (!res.destroyed) res.write(`${JSON.stringify({ Index: frame.Index, Events: events })}\n`);
    });
  };
  for (const frame of deps.store.frames) if (frame.Index >= from) send(frame);
  deps.store.on('frame', send);
  const beat = setInterval(() => {
    if (!res.destroyed) res.write('{}\n');
  }, deps.heartbeatMs);
  const done = () => {
    clearInterval(beat);
    deps.store.off('frame', send);
    deps.streams.delete(res);
  };
  req.on('close', done);
  res.on('close', done);
}

async function fs(deps: ServerDeps, op: string, allocId: string, url: URL, res: ServerResponse): Promise<void> {
  if (!deps.store.allocs.has(allocId)) return text(res, 404, `unknown allocation ID "${allocId}"`);
  const root = deps.runner.allocDir(allocId);
  const rel = normalize(url.searchParams.get('path') ?? '/').replace(/^(\.\.(\/|$))+/, '');
  const file = join(root, rel);
  if (op === 'logs') {
    const task = url.searchParams.get('task') ?? '';
    const type = url.searchParams.get('type') ?? 'stdout';
    const dir = join(root, 'alloc', 'logs');
    const files = existsSync(dir)
      ? listDir(dir)
          .filter((f) => f.Name.startsWith(`${task}.${type}.`))
          .sort((a, b) => Number(a.Name.split('.').pop()) - Number(b.Name.split('.').pop()))
      : [];
    const data = Buffer.concat(files.map((f) => readFileSync(join(dir, f.Name))));
    const offset = Number(url.searchParams.get('offset') ?? 0);
    const origin = url.searchParams.get('origin') ?? 'start';
    const slice = origin === 'end' ? data.subarray(Math.max(0, data.length - offset)) : data.subarray(offset);
    if (url.searchParams.get('plain') === 'true') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return void res.end(slice);
    }
    // Framed: StreamFrame JSON objects, Data base64.
    res.writeHead(200, { 'content-type': 'application/json' });
    return void res.end(
      slice.length > 0
        ? JSON.stringify({
            Offset: offset + slice.length,
            Data: slice.toString('base64'),
            File: `alloc/logs/${task}.${type}`,
          })
        : '',
    );
  }
  if (!existsSync(file)) return text(res, 404, `stat ${rel}: no such file or directory`);
  if (op === 'ls') return json(res, 200, listDir(file));
  if (op === 'stat') {
    const s = statSync(file);
    return json(res, 200, {
      Name: rel.split('/').pop(),
      IsDir: s.isDirectory(),
      Size: s.size,
      ModTime: s.mtime.toISOString(),
    });
  }
  if (op === 'cat') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    return void res.end(readFileSync(file));
  }
  const offset = Number(url.searchParams.get('offset') ?? 0);
  const limit = Number(url.searchParams.get('limit') ?? -1);
  const handle = await open(file, 'r');
  try {
    const size = (await handle.stat()).size;
    const length = Math.max(0, Math.min(limit < 0 ? size : limit, size - offset));
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, offset);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(buffer);
  } finally {
    await handle.close();
  }
}
