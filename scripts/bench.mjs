#!/usr/bin/env node
// Benchmark of the executor service against the targets in docs/architecture.md ("Performance targets"). Prints a
// table and JSON (also written to reports/bench.json). The service runs as its own process on PostgreSQL
// on the same host; this process is the load: HTTP clients and simulated pull workers.
//
//   npm run bench                          # PostgreSQL in a container from images/postgres (Docker needed)
//   npm run bench -- --database-url URL    # an existing PostgreSQL (an empty database)
//   npm run bench -- --quick               # smaller counts, for a quick look
//   npm run bench -- --help                # these lines
//   npm run bench -- --only dispatch       # some sections: submit, dispatch, leases, live, batch, nomad (comma-separated)
//
// The batch section runs the batch backend against moto (integration/.venv) behind the throttling proxy,
// which enforces AWS's SubmitJob quota (50/s); the jobs are held in SUBMITTED by moto's state manager, so
// moto starts no containers and the figures are those of the API traffic alone. The nomad section runs the
// nomad backend against the Nomad fake: register rate, and requests per job over its life (scripts/bench/nomad.mjs).
//   npm run bench -- --cpu-prof DIR        # the service writes a V8 CPU profile into DIR when it stops
//   npm run bench -- --only dispatch --rates 500   # the dispatch section at these rates only (default 500,100,250)
//   npm run bench -- --database-url URL --postgres-pid PID   # CPU per task of that PostgreSQL too (its postmaster)
//   npm run bench -- --service DIR         # the service of another checkout (built), under this bench's load
//   npm run bench -- --no-build            # executor/dist as it is (repeated runs of one build)
//   npm run bench -- --vs edge3,celery     # and the same scenarios on Airflow's Edge executor and on Celery,
//                                          # in one side-by-side table (scripts/bench/, README "Benchmark");
//                                          # --vs-rate N sets its open-loop rate (default 20/s)
//   npm run bench -- --fsync on|off        # PostgreSQL's fsync (default: on with --vs, off otherwise)
//   npm run bench -- --vs ... --readme     # and put the side-by-side table into README.md ("Benchmark")
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { stopChild } from './bench/children.mjs';
import { CpuMeter, containerPid } from './bench/cpu.mjs';
import { benchNomad, nomadAvailable } from './bench/nomad.mjs';
import { formatVs, ratio, vsRows } from './bench/table.mjs';

const OPTIONS = {
  help: { type: 'boolean', short: 'h', default: false },
  'database-url': { type: 'string' },
  quick: { type: 'boolean', default: false },
  only: { type: 'string' },
  'cpu-prof': { type: 'string' },
  rates: { type: 'string', default: '500,100,250' },
  'postgres-pid': { type: 'string' },
  service: { type: 'string' },
  build: { type: 'boolean', default: true },
  vs: { type: 'string' },
  'vs-rate': { type: 'string', default: '20' },
  fsync: { type: 'string' },
  readme: { type: 'boolean', default: false },
};
/** The header comment above, without its slashes: what --help prints. */
function usage() {
  const lines = readFileSync(new URL(import.meta.url), 'utf8')
    .split('\n')
    .slice(1);
  return lines
    .slice(
      0,
      lines.findIndex((l) => !l.startsWith('//')),
    )
    .map((l) => l.replace(/^\/\/ ?/, ''))
    .join('\n');
}
let parsed;
try {
  parsed = parseArgs({ options: OPTIONS, allowNegative: true });
} catch (error) {
  console.error(`bench: ${error.message}; \`npm run bench -- --help\` lists the options`);
  process.exit(2);
}
const args = parsed.values;
if (args.help) {
  console.log(usage());
  process.exit(0);
}
const SECTIONS = ['submit', 'dispatch', 'leases', 'live', 'batch', 'nomad'];
const only = new Set(args.only ? args.only.split(',').map((x) => x.trim()) : SECTIONS);
for (const name of only) {
  if (!SECTIONS.includes(name)) {
    console.error(`bench: --only ${name}: no such section; sections are ${SECTIONS.join(', ')}`);
    process.exit(2);
  }
}
const rates = args.rates.split(',').map((x) => Number(x.trim()));
if (rates.some((r) => !Number.isInteger(r) || r < 1 || r > 5000)) {
  console.error(`bench: --rates ${args.rates}: whole numbers of submissions per second, 1 to 5000, comma-separated`);
  process.exit(2);
}
if (args['postgres-pid'] !== undefined && !(Number(args['postgres-pid']) > 0 && args['database-url'])) {
  console.error('bench: --postgres-pid PID: the pid of the postmaster of --database-url, on this host');
  process.exit(2);
}
const PEERS = ['edge3', 'celery'];
const vs = new Set(args.vs ? args.vs.split(',').map((x) => x.trim()) : []);
for (const name of vs) {
  if (!PEERS.includes(name)) {
    console.error(`bench: --vs ${name}: no such peer; peers are ${PEERS.join(', ')}`);
    process.exit(2);
  }
}
const vsRate = Number(args['vs-rate']);
if (!Number.isInteger(vsRate) || vsRate < 1 || vsRate > 1000) {
  console.error(`bench: --vs-rate ${args['vs-rate']}: a whole number of jobs per second, 1 to 1000`);
  process.exit(2);
}
if (args.fsync !== undefined && !['on', 'off'].includes(args.fsync)) {
  console.error(`bench: --fsync ${args.fsync}: on or off`);
  process.exit(2);
}
const quick = args.quick;
// The side-by-side scenarios (--vs): the same for every system. Worker counts of the pull scenarios, the
// open-loop rate and its duration, and the backlog drained for the dispatch rate.
const VS = {
  workers: quick ? [200] : [200, 2000],
  rate: vsRate,
  seconds: quick ? 10 : 20,
  backlog: quick ? 2000 : 3000,
  concurrency: 4,
  // How long each phase's jobs may take to reach a worker; those still queued then count as not dispatched
  // within the deadline (an edge3 fleet of 2,000 polling every second once took over 14 minutes).
  rateDrainSeconds: 60,
  backlogDrainSeconds: 120,
  // A peer's whole scenario (its fleet's start included), past which it is stopped and its columns left empty.
  scenarioSeconds: 420,
};
const root = new URL('..', import.meta.url).pathname;
// The checkout whose service runs (--service: another one, for before/after comparisons under the same load).
const serviceRoot = args.service ?? root;
const ADMIN = 'aft_benchadmin000001_bench-admin-secret-0123456789abcdef';
const results = {};
// Other work on the host shows in the load averages; the table's title carries them.
const loadAtStart = loadavg();
// Side by side: airfleet's figures and the peers', by scenario (see vsRecord).
const vsAirfleet = { pull: {}, push: null };
const vsPeers = { pull: {}, push: {} };
const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (xs, p) => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** The images/postgres image the bench runs, built (with the base image) when it is not there yet. */
async function ensurePostgresImage() {
  const { projectImage } = await import('../integration/src/docker-env.ts');
  const image = projectImage('postgres');
  try {
    execFileSync('docker', ['image', 'inspect', image], { stdio: 'ignore' });
    return;
  } catch {}
  log(`${image} is not built yet: building images/base and images/postgres (minutes, the first time)`);
  execFileSync('bash', [join(root, 'images/base/build.sh')], { stdio: ['ignore', 'inherit', 'inherit'] });
  const tag = image.split(':').at(-1);
  execFileSync('docker', ['build', '-q', '--build-arg', `TAG=${tag}`, '-t', image, join(root, 'images/postgres')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

// ---------------------------------------------------------------- database and service
// The service runs as deployed: compiled (executor/dist, which bin/airfleet.mjs prefers when current), not
// from the TypeScript sources, whose type stripping costs resident memory a deployment does not have.
// --no-build: the dist as it is (repeated runs of one build, minutes apart on a loaded machine).
if (args.build) {
  log('building executor/dist');
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: serviceRoot, stdio: ['ignore', 'ignore', 'inherit'] });
}
let postgres = null;
let socketParent = null;
let databaseUrl = args['database-url'];
// Side by side, every system is durable as deployed: PostgreSQL keeps its default fsync=on (the other runs
// keep the test tier's fsync=off; --fsync chooses). Celery's Redis writes its append-only file every second
// (bench/celery.mjs).
const fsync = args.fsync ?? (vs.size > 0 ? 'on' : 'off');
if (!databaseUrl) {
  process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
  const { startPostgres } = await import('../integration/src/postgres.ts');
  await ensurePostgresImage();
  log(`starting PostgreSQL (images/postgres, fsync ${fsync}) on this host, reached over its Unix socket`);
  // Over the server's Unix socket, as a deployment with PostgreSQL on the same host connects
  // (README, "PostgreSQL on the same host"): loopback TCP cost the service about a fifth more CPU per task. pg_stat_statements is
  // loaded for the dispatch section's statements per task.
  socketParent = mkdtempSync(join(tmpdir(), 'airfleet-bench-pg-'));
  const socketDir = join(socketParent, 'socket');
  mkdirSync(socketDir);
  postgres = await startPostgres({
    settings: {
      max_connections: '200',
      shared_buffers: '256MB',
      fsync,
      shared_preload_libraries: 'pg_stat_statements',
    },
    socketDir,
  });
  databaseUrl = postgres.socketUrl;
}
// PostgreSQL's processes, for the CPU a job costs there (none known when it is not the bench's own).
const pgPid = postgres
  ? containerPid(postgres.container.getId())
  : args['postgres-pid']
    ? Number(args['postgres-pid'])
    : null;
const postgresPids = () => (pgPid ? [pgPid] : []);
// ---------------------------------------------------------------- moto for the batch section
const BATCH_TPS = 40;
let moto = null;
let proxy = null;
let batchEnv = {};
const batchTraffic = { describeCalls: 0, idsDescribed: 0, submitTimes: [], counting: false };
if (only.has('batch') && !args.only) {
  // Not asked for by name: without the integration venv (bash scripts/setup-python.sh) it is left out.
  const { motoAvailability } = await import('../integration/src/moto.ts');
  const available = motoAvailability();
  if (!available.ok) {
    log(`the batch section is skipped: ${available.reason} (ask for it with --only batch to make that an error)`);
    only.delete('batch');
  }
}
if (only.has('batch')) {
  const { startMoto, motoAvailability } = await import('../integration/src/moto.ts');
  const { ThrottleProxy } = await import('../integration/src/throttle-proxy.ts');
  const { createMotoBatch } = await import('../integration/src/moto-batch.ts');
  const available = motoAvailability();
  if (!available.ok) {
    console.error(`bench: the batch section needs moto: ${available.reason}`);
    process.exit(2);
  }
  log('starting moto (Batch) and the throttling proxy (SubmitJob quota 50/s, as AWS)');
  moto = await startMoto();
  proxy = await ThrottleProxy.start(moto.endpoint);
  proxy.limit('SubmitJob', 50, 50);
  proxy.onPass = (operation, body) => {
    if (operation === 'SubmitJob') batchTraffic.submitTimes.push(performance.now());
    if (operation === 'DescribeJobs' && batchTraffic.counting) {
      batchTraffic.describeCalls++;
      batchTraffic.idsDescribed += JSON.parse(body.toString()).jobs.length;
    }
  };
  const env = await createMotoBatch(moto, { prefix: 'airfleet-bench-' });
  await moto.setTransition('batch::job', { progression: 'manual', times: 1_000_000_000 });
  // Its own service instance on the same database, so the other sections' figures (memory above all: the
  // AWS SDK is loaded only by an instance that runs the batch backend) are those of a service without it.
  batchEnv = {
    ...env.serviceEnv(proxy.endpoint),
    AIRFLEET_INSTANCE_NAME: 'bench-batch',
    AIRFLEET_BACKENDS: 'pool,batch',
    AIRFLEET_BATCH_MAX_TPS: String(BATCH_TPS),
    AIRFLEET_BATCH_BURST: String(BATCH_TPS),
    AIRFLEET_BATCH_POLL_INTERVAL_MS: '2000',
    AIRFLEET_BATCH_RUNNABLE_TIMEOUT_SECONDS: '3600',
  };
}

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const profileFlags = args['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', args['cpu-prof']] : [];
const serveArgs = [...profileFlags, join(serviceRoot, 'executor/bin/airfleet.mjs'), 'serve', '--port', String(port)];
const service = spawn(process.execPath, serveArgs, {
  env: {
    ...process.env,
    AIRFLEET_DATABASE_URL: databaseUrl,
    AIRFLEET_ADMIN_TOKEN: ADMIN,
    AIRFLEET_LOG_LEVEL: 'warn',
    AIRFLEET_POOL_SIZE: '20',
    AIRFLEET_HEARTBEAT_TIMEOUT_MS: '120000',
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});
// Statements per task in the dispatch section, where the server has pg_stat_statements loaded
// (shared_preload_libraries); null otherwise, and the figures leave them out.
let statementsClient = null;
if (only.has('dispatch')) {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  statementsClient = client;
  try {
    await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await client.query('SELECT 1 FROM pg_stat_statements LIMIT 1');
  } catch (error) {
    log(`no statement counts: pg_stat_statements is not loaded (${error.message.split('\n')[0]})`);
    statementsClient = null;
    await client.end();
  }
}
const rssMb = () => {
  const status = readFileSync(`/proc/${service.pid}/status`, 'utf8');
  return round(Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024);
};
let stopBatchService = async () => {};
// Whatever else runs (the local-backend instance, the peers' servers), stopped at the end in any case:
// [name, stop] pairs.
const stoppers = [];
/**
 * One step of the cleanup, bounded: a step that hangs (a peer's server that ignores its signal, a socket
 * that never closes) is named and passed over, so the steps after it still stop moto and the PostgreSQL
 * container and the script exits, instead of hanging with them left running.
 */
async function cleanupStep(name, stop, ms = 20_000) {
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => {
      log(`stopping ${name}: not done after ${ms / 1000} s; going on without it`);
      resolve();
    }, ms);
  });
  const done = Promise.resolve()
    .then(stop)
    .catch((e) => log(`stopping ${name}: ${e.message}`));
  await Promise.race([done, late]).finally(() => clearTimeout(timer));
}
let cleaning = null;
/** Stops everything this run started, once (the end of the run and a Ctrl-C may both ask). */
function cleanup() {
  cleaning ??= (async () => {
    await cleanupStep('the batch section service', () => stopBatchService());
    for (const [name, stop] of stoppers.reverse()) await cleanupStep(name, stop);
    await cleanupStep('the service', () => stopChild(service));
    await cleanupStep('the statement counter', () => statementsClient?.end());
    await cleanupStep('the HTTP client', () => http.destroy(), 5_000);
    await cleanupStep('the throttling proxy', () => proxy?.stop());
    await cleanupStep('moto', () => moto?.stop());
    await cleanupStep('PostgreSQL', () => postgres?.stop(), 60_000);
    if (socketParent) rmSync(socketParent, { recursive: true, force: true });
  })();
  return cleaning;
}
process.on('SIGINT', () => cleanup().then(() => process.exit(130)));

// undici's request API, not fetch: at the ~2,500 requests/s of the dispatch step, fetch's WHATWG streams cost
// the load generator a whole core, and a saturated generator measures itself (its event loop delays every
// reply it reads), not the service. One connection per parked long-poll, as real workers hold.
const http = new Pool(base, { connections: null, pipelining: 1, keepAliveTimeout: 60_000 });
async function requestText(method, path, body, token = ADMIN) {
  const res = await http.request({
    method,
    path,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.body.text();
  if (res.statusCode >= 400) throw new Error(`${method} ${path}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
  return text;
}
async function call(method, path, body, token = ADMIN) {
  const text = await requestText(method, path, body, token);
  return text ? JSON.parse(text) : undefined;
}

try {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) break;
    } catch {}
    await sleep(100);
  }
  await sleep(500);
  results.rssIdleMb = rssMb();
  log(`service up on ${base}; idle RSS ${results.rssIdleMb} MB`);
  let seq = 0;
  const key = (p) => `${p}-${seq++}`;

  // ---------------------------------------------------------------- submissions, one per request
  async function closedLoopSubmit(n, concurrency, queue) {
    const lat = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          next++;
          const t = performance.now();
          await call('POST', '/v1/workloads', { key: key('s'), command: ['true'], queue });
          lat.push(performance.now() - t);
        }
      }),
    );
    const secs = (performance.now() - t0) / 1000;
    return { perSecond: Math.round(n / secs), p50Ms: round(pct(lat, 50)), p99Ms: round(pct(lat, 99)) };
  }
  // onSend(key, t): before the request goes out, so that a lease that reaches its worker before the submit's
  // answer reaches the bench (the fastest ones) is still counted.
  async function openLoopSubmit(ratePerSec, seconds, queue, onSend) {
    const lat = [];
    const total = ratePerSec * seconds;
    const t0 = performance.now();
    const inflight = [];
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / ratePerSec;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      const k = key('o');
      const t = performance.now();
      onSend?.(k, t);
      inflight.push(
        call('POST', '/v1/workloads', { key: k, command: ['true'], queue }).then(() => {
          lat.push(performance.now() - t);
        }),
      );
    }
    await Promise.all(inflight);
    return {
      p50Ms: round(pct(lat, 50)),
      p99Ms: round(pct(lat, 99)),
      achievedPerSecond: Math.round(total / ((performance.now() - t0) / 1000)),
    };
  }

  await closedLoopSubmit(1000, 32, 'warmup');
  if (only.has('submit')) {
    log('submissions, one per request (closed loop, 64 clients)');
    results.submitSingle = await closedLoopSubmit(quick ? 3000 : 15000, 64, 'bench-single');
    log(`  ${results.submitSingle.perSecond}/s`);
    log('submissions at a fixed 1,000/s (open loop)');
    results.submitAt1000 = await openLoopSubmit(1000, quick ? 3 : 8, 'bench-open');
    log('submissions in batches of 1,000');
    {
      const batches = quick ? 10 : 40;
      const t0 = performance.now();
      let i = 0;
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (i < batches) {
            i++;
            await call('POST', '/v1/workloads/batch', {
              workloads: Array.from({ length: 1000 }, () => ({
                key: key('b'),
                command: ['true'],
                queue: 'bench-batch',
              })),
            });
          }
        }),
      );
      results.submitBatched = { perSecond: Math.round((batches * 1000) / ((performance.now() - t0) / 1000)) };
      log(`  ${results.submitBatched.perSecond}/s`);
    }
  }

  // ---------------------------------------------------------------- simulated pull workers
  const submittedAt = new Map();
  const leaseLat = [];
  let leased = 0;
  let lastLeaseAt = 0;
  // Worker-protocol requests answered and failed (polls, reports, heartbeats), for the side-by-side table.
  const workerTraffic = { requests: 0, failed: 0 };
  const counted = (promise) =>
    promise.then(
      (value) => {
        workerTraffic.requests++;
        return value;
      },
      (error) => {
        workerTraffic.failed++;
        throw error;
      },
    );
  let stopWorkers = false;
  async function simulatedWorker(name, queue, concurrency) {
    const reg = await call('POST', '/v1/worker/register', {
      name,
      queues: [queue],
      concurrency,
      runtime: 'process',
      version: 'bench',
    });
    const token = reg.token;
    const worker = { token, queue, name, running: [] };
    (async () => {
      while (!stopWorkers) {
        let res;
        try {
          res = await counted(call('POST', '/v1/worker/poll', { freeSlots: concurrency, waitMs: 20_000 }, token));
        } catch {
          if (stopWorkers) return;
          await sleep(200);
          continue;
        }
        const now = performance.now();
        if (res.leases.length) lastLeaseAt = now;
        for (const lease of res.leases) {
          leased++;
          const t = submittedAt.get(lease.key);
          if (t !== undefined) leaseLat.push(now - t);
          // The simulated task ends at once; its report frees the slot (and wakes this poll's successor).
          counted(
            call(
              'POST',
              '/v1/worker/report',
              { workloadId: lease.id, attempt: lease.attempt, state: 'succeeded', exitCode: 0 },
              token,
            ),
          ).catch(() => undefined);
        }
      }
    })();
    return worker;
  }
  // Each simulated worker heartbeats on its own clock, as real workers started at different times do
  // (a synchronized burst of 2,000 would measure the bench, not the service).
  function heartbeats(workers, everyMs) {
    for (const w of workers) {
      const beat = () => {
        if (stopWorkers) return;
        counted(call('POST', '/v1/worker/heartbeat', { running: [], metrics: { cpuPercent: 1, load1: 0.1 } }, w.token))
          .catch(() => undefined)
          .finally(() => setTimeout(beat, everyMs));
      };
      setTimeout(beat, Math.random() * everyMs);
    }
  }

  const workerCount = quick ? 200 : 2000;
  const workers = [];
  async function registerWorkers(upTo) {
    log(`registering simulated pull workers up to ${upTo} (long-polling, heartbeating every 10 s)`);
    const added = [];
    for (let i = workers.length; i < upTo; i += 100) {
      added.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(100, upTo - i) }, (_, j) =>
            simulatedWorker(`bw-${i + j}`, 'bench-live', VS.concurrency),
          ),
        )),
      );
    }
    workers.push(...added);
    heartbeats(added, 10_000);
    await sleep(1500);
  }
  // Side by side (--vs), the pull scenarios run at each worker count of VS.workers as the fleet grows to
  // workerCount, before the sections below load the database.
  const meter = new CpuMeter({ api: () => [service.pid], postgres: postgresPids });
  for (const n of [...new Set([...(vs.size ? VS.workers : []), workerCount])].sort((a, b) => a - b)) {
    await registerWorkers(n);
    if (vs.size && VS.workers.includes(n)) vsAirfleet.pull[n] = await vsPull(n);
  }
  results.workersConnected = workerCount;

  /** The pull scenario of the side-by-side table: VS.rate for VS.seconds, then a backlog. */
  async function vsPull(n) {
    log(`side by side: airfleet, ${n} pull workers: ${VS.rate}/s for ${VS.seconds} s, then a backlog of ${VS.backlog}`);
    leaseLat.length = 0;
    const before = leased;
    const traffic0 = { ...workerTraffic };
    const load0 = process.cpuUsage();
    meter.sample('rate-start');
    await openLoopSubmit(VS.rate, VS.seconds, 'bench-live', (k, t) => submittedAt.set(k, t));
    const total = VS.rate * VS.seconds;
    const t0 = performance.now();
    while (leased - before < total && performance.now() - t0 < VS.rateDrainSeconds * 1000) await sleep(20);
    meter.sample('rate-end');
    const load = process.cpuUsage(load0);
    const cpu = meter.between('rate-start', 'rate-end');
    const rate = {
      jobs: total,
      leased: leased - before,
      p50Ms: round(pct(leaseLat, 50)),
      p99Ms: round(pct(leaseLat, 99)),
      requests: workerTraffic.requests - traffic0.requests,
      failed: workerTraffic.failed - traffic0.failed,
      cpu: { ...cpu, load: (load.user + load.system) / 1000 },
    };
    const backlogBefore = leased;
    const b0 = performance.now();
    for (let i = 0; i < VS.backlog; i += 100) {
      await call('POST', '/v1/workloads/batch', {
        workloads: Array.from({ length: Math.min(100, VS.backlog - i) }, () => ({
          key: key('vsb'),
          command: ['true'],
          queue: 'bench-live',
        })),
      });
    }
    while (leased - backlogBefore < VS.backlog && performance.now() - b0 < VS.backlogDrainSeconds * 1000)
      await sleep(20);
    const got = leased - backlogBefore;
    const backlog = { jobs: VS.backlog, leased: got, perSecond: Math.round(got / ((lastLeaseAt - b0) / 1000)) };
    log(`  p50 ${rate.p50Ms} ms, p99 ${rate.p99Ms} ms; ${backlog.perSecond} jobs/s from the backlog`);
    await sleep(500);
    return { workers: n, rate, backlog };
  }

  // Worker polls by outcome (airfleet_poll_passes_total): how many database passes a task costs.
  async function pollPasses() {
    const text = await requestText('GET', '/metrics');
    const out = { leased: 0, empty: 0, skipped: 0 };
    for (const m of text.matchAll(/^airfleet_poll_passes_total\{outcome="(\w+)"\} (\d+)/gm)) out[m[1]] = Number(m[2]);
    return out;
  }
  async function dispatchAtHalfLoad(rate = 500) {
    leaseLat.length = 0;
    const before = leased;
    const passesBefore = await pollPasses();
    const statementsBefore = await statementCounts();
    const load0 = process.cpuUsage();
    meter.sample('dispatch-start');
    const r = await openLoopSubmit(rate, quick ? 3 : 6, 'bench-live', (k, t) => submittedAt.set(k, t));
    // Every workload of the step is leased before the next step starts, so no step inherits a backlog.
    const total = rate * (quick ? 3 : 6);
    const t0 = performance.now();
    while (leased - before < total && performance.now() - t0 < 60_000) await sleep(20);
    // The reports of the last leases are part of the cost of a task: let them land before the CPU sample.
    await sleep(500);
    meter.sample('dispatch-end');
    const load = process.cpuUsage(load0);
    const cpu = meter.between('dispatch-start', 'dispatch-end');
    const tasks = leased - before;
    const per1000 = (ms) => (tasks > 0 ? round((ms / tasks) * 1000) : null);
    return {
      submitsPerSecond: rate,
      submitP99Ms: r.p99Ms,
      leaseP50Ms: round(pct(leaseLat, 50)),
      leaseP99Ms: round(pct(leaseLat, 99)),
      samples: leaseLat.length,
      pollPasses: Object.fromEntries(Object.entries(await pollPasses()).map(([k, v]) => [k, v - passesBefore[k]])),
      // CPU per 1,000 tasks leased (submit, lease and report), ms: load-independent where latency is not.
      cpuMsPer1000: {
        service: per1000(cpu.api),
        postgres: pgPid ? per1000(cpu.postgres) : null,
        load: per1000((load.user + load.system) / 1000),
      },
      statements: statementsPerTask(statementsBefore, await statementCounts(), tasks),
    };
  }
  /** Calls of each statement so far (pg_stat_statements), or null when the extension is not there. */
  async function statementCounts() {
    if (statementsClient === null) return null;
    try {
      const { rows } = await statementsClient.query(
        `SELECT queryid::text AS id, calls::float8 AS calls, total_exec_time::float8 AS ms, left(query, 110) AS query
         FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      );
      return new Map(rows.map((r) => [r.id, r]));
    } catch (error) {
      log(`statement counts left out (pg_stat_statements: ${error.message})`);
      statementsClient = null;
      return null;
    }
  }
  /** Statements per task between two counts: in all, and the most called (with their execution ms per task). */
  function statementsPerTask(a, b, tasks) {
    if (!a || !b || tasks === 0) return null;
    const rows = [...b.values()]
      .map((r) => ({ ...r, calls: r.calls - (a.get(r.id)?.calls ?? 0), ms: r.ms - (a.get(r.id)?.ms ?? 0) }))
      .filter((r) => r.calls > 0)
      .sort((x, y) => y.calls - x.calls);
    const total = rows.reduce((n, r) => n + r.calls, 0);
    return {
      perTask: round(total / tasks, 2),
      top: rows.slice(0, 12).map((r) => ({
        perTask: round(r.calls / tasks, 2),
        execMsPerTask: round(r.ms / tasks, 3),
        query: r.query.replace(/\s+/g, ' '),
      })),
    };
  }
  /** VACUUM (ANALYZE) of the bench's database, as autovacuum would run it after a bulk load; returns its ms. */
  async function vacuumAnalyze() {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    const t0 = performance.now();
    try {
      await client.query('VACUUM (ANALYZE)');
    } finally {
      await client.end();
    }
    return Math.round(performance.now() - t0);
  }
  // The lease latency is measured from before the submit request is sent until the lease arrives at a worker.
  if (only.has('dispatch')) {
    log(`submit → lease latency at ${rates.join(', ')}/s (500/s is half load) with all workers waiting`);
    // Where the knee is: the same measurement at lower submission rates (--rates).
    results.dispatchCurve = [];
    for (const rate of rates) {
      const r = await dispatchAtHalfLoad(rate);
      if (rate === 500) results.dispatch = r;
      else results.dispatchCurve.push(r);
      const c = r.cpuMsPer1000;
      log(
        `  at ${rate}/s: p50 ${r.leaseP50Ms} ms, p99 ${r.leaseP99Ms} ms; polls ${JSON.stringify(r.pollPasses)}; ` +
          `CPU per 1,000 tasks: service ${c.service} ms, PostgreSQL ${c.postgres ?? 'n/a'} ms, load ${c.load} ms` +
          (r.statements ? `; ${r.statements.perTask} statements per task` : ''),
      );
    }
  }

  if (only.has('leases')) {
    log('leases per second: a backlog of queued workloads drained by the waiting workers');
    const backlog = quick ? 5000 : 20000;
    const before = leased;
    for (let i = 0; i < backlog; i += 1000) {
      await call('POST', '/v1/workloads/batch', {
        workloads: Array.from({ length: Math.min(1000, backlog - i) }, () => ({
          key: key('lq'),
          command: ['true'],
          queue: 'bench-live',
        })),
      });
    }
    const t0 = performance.now();
    while (leased - before < backlog && performance.now() - t0 < 120_000) await sleep(20);
    results.leasesPerSecond = Math.round((leased - before) / ((performance.now() - t0) / 1000));
    log(`  ${results.leasesPerSecond}/s`);
  }

  if (only.has('live')) {
    // The baseline of the comparison, like for like: the same workers connected and heartbeating, the same
    // database so far, vacuumed as the measurement with the live load will be (below); only the live
    // workloads are missing.
    await vacuumAnalyze();
    log(`submissions at a fixed 1,000/s with the ${workers.length} workers connected, before the live load`);
    results.submitAt1000Connected = await openLoopSubmit(1000, quick ? 3 : 8, 'bench-open1');
    log(`loading ${quick ? '20,000' : '100,000'} live workloads (queued on a queue nobody serves)`);
    const live = quick ? 20000 : 100000;
    for (let i = 0; i < live; i += 1000) {
      await call('POST', '/v1/workloads/batch', {
        workloads: Array.from({ length: 1000 }, () => ({ key: key('live'), command: ['true'], queue: 'bench-parked' })),
      });
    }
    results.liveWorkloads = live;
    // Live workloads build up over hours in a deployment, and autovacuum keeps up with them; here they arrive
    // in seconds, and autovacuum's pass over the loaded tables would start at some point of the next minute
    // (autovacuum_naptime), perhaps inside the measurement. What is measured is the service holding them, so
    // the bench runs that pass itself first (VACUUM (ANALYZE), its time printed), then measures.
    results.liveVacuumMs = await vacuumAnalyze();
    log(`  VACUUM (ANALYZE) after the load: ${results.liveVacuumMs} ms`);
    results.submitAt1000WithLive = await openLoopSubmit(1000, quick ? 3 : 8, 'bench-open2');
    results.dispatchWithLive = await dispatchAtHalfLoad();
    log(`  submit p99 ${results.submitAt1000WithLive.p99Ms} ms, lease p99 ${results.dispatchWithLive.leaseP99Ms} ms`);
  }
  results.rssLoadedMb = rssMb();
  stopWorkers = true;

  if (only.has('batch')) {
    const n = quick ? 200 : 1000;
    log(`batch: ${n} workloads through the batch backend, limiter at ${BATCH_TPS}/s`);
    const batchPort = await freePort();
    const batchBase = `http://127.0.0.1:${batchPort}`;
    const batchArgs = [join(root, 'executor/bin/airfleet.mjs'), 'serve', '--port', String(batchPort)];
    const batchService = spawn(process.execPath, batchArgs, {
      env: {
        ...process.env,
        AIRFLEET_DATABASE_URL: databaseUrl,
        AIRFLEET_ADMIN_TOKEN: ADMIN,
        AIRFLEET_LOG_LEVEL: 'warn',
        ...batchEnv,
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    stopBatchService = async () => {
      if (batchService.exitCode !== null) return;
      const exited = new Promise((r) => batchService.once('exit', r));
      batchService.kill('SIGTERM');
      await exited;
    };
    const batchCall = async (method, path, body) => {
      const res = await fetch(batchBase + path, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
      return res.json();
    };
    for (let i = 0; i < 300; i++) {
      if (
        await fetch(`${batchBase}/readyz`).then(
          (r) => r.ok,
          () => false,
        )
      )
        break;
      if (batchService.exitCode !== null) throw new Error('the batch service instance exited at start');
      await sleep(100);
    }
    const before = proxy.count('SubmitJob');
    batchTraffic.submitTimes = [];
    await batchCall('POST', '/v1/workloads/batch', {
      workloads: Array.from({ length: n }, () => ({
        key: key('batch'),
        command: ['true'],
        backend: 'batch',
        queue: 'bench-batch',
      })),
    });
    const t0 = performance.now();
    const states = async () => {
      const { workloads: items } = await batchCall('GET', `/v1/workloads?queue=bench-batch&limit=${n}`);
      const count = {};
      for (const w of items) count[w.state] = (count[w.state] ?? 0) + 1;
      return { count, items };
    };
    let seen = await states();
    while ((seen.count.queued ?? 0) + (seen.count.submitting ?? 0) > 0 && performance.now() - t0 < 300_000) {
      await sleep(1000);
      seen = await states();
    }
    const times = batchTraffic.submitTimes;
    const after = proxy.count('SubmitJob');
    // Steady state: every job live; count DescribeJobs traffic over a few status passes.
    batchTraffic.counting = true;
    await sleep(7_000);
    batchTraffic.counting = false;
    const failed = seen.items.filter((w) => w.state === 'failed');
    results.batch = {
      workloads: n,
      limiterPerSecond: BATCH_TPS,
      submitPerSecond: times.length > 1 ? round((times.length - 1) / ((times.at(-1) - times[0]) / 1000)) : 0,
      submitsPassed: after.passed - before.passed,
      throttledByQuota: after.throttled - before.throttled,
      throttlingFailures: failed.length,
      states: seen.count,
      describeCallsPerJobPerPoll:
        batchTraffic.idsDescribed > 0 ? round(batchTraffic.describeCalls / batchTraffic.idsDescribed, 4) : null,
      describeCalls: batchTraffic.describeCalls,
      jobsDescribed: batchTraffic.idsDescribed,
    };
    await stopBatchService();
    log(
      `  ${results.batch.submitPerSecond} SubmitJob/s, ${results.batch.throttledByQuota} throttled by the quota, ${failed.length} failed; ` +
        `${results.batch.describeCalls} DescribeJobs for ${results.batch.jobsDescribed} job descriptions`,
    );
  }

  if (only.has('nomad')) {
    const available = nomadAvailable();
    if (available.ok) {
      results.nomad = await benchNomad({ root, databaseUrl, admin: ADMIN, quick, log, freePort, sleep });
    } else if (args.only) {
      throw new Error(`the nomad section cannot run: ${available.reason}`);
    } else {
      log(`the nomad section is skipped: ${available.reason}`);
    }
  }

  // ---------------------------------------------------------------- side by side (--vs)
  if (vs.size) {
    // The main instance and its 2,000 simulated workers are done: nothing of airfleet's runs while the peers do.
    await stopChild(service);
    vsAirfleet.push = await vsLocal();
    if (vs.has('edge3')) {
      const { startEdge3 } = await import('./bench/edge3.mjs');
      const edge = await startEdge3({ createDatabase, postgresPids });
      stoppers.push(['the Edge api-server', edge.stop]);
      for (const n of VS.workers) {
        vsPeers.pull[n] = {};
        for (const [column, pollInterval] of [
          ['edge3-default', 5],
          ['edge3-1s', 1],
        ]) {
          log(`side by side: edge3, ${n} workers polling every ${pollInterval} s: ${VS.rate}/s, then a backlog`);
          let r;
          try {
            r = await edge.run({ ...VS, workers: n, pollInterval });
          } catch (error) {
            // One scenario that breaks down leaves its column empty; the others still run.
            log(`  failed: ${error.message}`);
            vsPeers.pull[n][column] = { error: error.message };
            continue;
          }
          vsPeers.pull[n][column] = r;
          const { rate, backlog } = r.phases;
          log(
            `  p50 ${round(rate.p50Ms)} ms, p99 ${round(rate.p99Ms)} ms; ${round(backlog.perSecond)} jobs/s from the backlog; ` +
              `errors ${JSON.stringify(r.errors)}`,
          );
        }
      }
      await edge.stop();
    }
    if (vs.has('celery')) {
      const { startCelery } = await import('./bench/celery.mjs');
      const celery = await startCelery();
      stoppers.push(['Celery and its broker', celery.stop]);
      log(`side by side: celery: ${VS.rate}/s for ${VS.seconds} s, then a backlog of ${VS.backlog}`);
      const r = await celery.run(VS);
      vsPeers.push.celery = r;
      log(`  p50 ${round(r.rate.p50Ms)} ms, p99 ${round(r.rate.p99Ms)} ms; ${round(r.backlog.perSecond)} tasks/s`);
      await celery.stop();
    }
    results.vs = vsSummary();
  }

  // ---------------------------------------------------------------- report
  const t = DESIGN_TARGETS(results);
  const rows = t.map(([name, value, target, ok]) => [
    name,
    String(value),
    target,
    ok === null ? '' : ok ? 'met' : 'MISSED',
  ]);
  const widths = [0, 1, 2, 3].map((i) =>
    Math.max(...rows.map((r) => r[i].length), ['measure', 'value', 'target', ''][i].length),
  );
  const fmt = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log(`\n${fmt(['measure', 'value', 'target', ''])}\n${fmt(widths.map((w) => '-'.repeat(w)))}`);
  for (const r of rows) console.log(fmt(r));
  if (results.vs) {
    console.log(`\n${results.vs.title}\n\n${results.vs.text}\n\n${results.vs.legend}`);
  }
  const json = { when: new Date().toISOString(), quick, cores: cpus().length, machine: machine(), results };
  console.log(`\n${JSON.stringify(json)}`);
  mkdirSync(join(root, 'reports'), { recursive: true });
  writeFileSync(join(root, 'reports/bench.json'), `${JSON.stringify(json, null, 2)}\n`);
  if (args.readme && results.vs) writeReadmeTable(results.vs, json.machine);
} catch (error) {
  console.error(`bench: failed: ${error.stack ?? error}`);
  process.exitCode = 1;
} finally {
  await cleanup();
  process.exit();
}

// ---------------------------------------------------------------- side by side: airfleet's local backend

/**
 * The push scenario of the side-by-side table on airfleet's `local` backend: its own instance on the same
 * database (like the batch section's), running no-op tasks as processes with the default concurrency (one
 * per core, as the Celery worker's). A task's start is when its shell runs: it appends `key $EPOCHREALTIME`.
 */
async function vsLocal() {
  const localPort = await freePort();
  const localBase = `http://127.0.0.1:${localPort}`;
  const dir = join(root, '.bench/airfleet-local');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const startsFile = join(dir, 'starts.log');
  log(`side by side: airfleet local backend: ${VS.rate}/s for ${VS.seconds} s, then a backlog of ${VS.backlog}`);
  const instance = spawn(
    process.execPath,
    [join(root, 'executor/bin/airfleet.mjs'), 'serve', '--port', String(localPort)],
    {
      env: {
        ...process.env,
        AIRFLEET_DATABASE_URL: databaseUrl,
        AIRFLEET_ADMIN_TOKEN: ADMIN,
        // Not warn: as the only instance left it leads, and writes off the simulated pull workers that the
        // stopped main instance served (one warning each, expected here).
        AIRFLEET_LOG_LEVEL: 'error',
        AIRFLEET_INSTANCE_NAME: 'bench-local',
        AIRFLEET_BACKENDS: 'pool,local',
        AIRFLEET_LOCAL_RUN_DIR: join(dir, 'runs'),
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  const stop = () => stopChild(instance);
  stoppers.push(['the local-backend instance', stop]);
  const pool = new Pool(localBase, { connections: 64, keepAliveTimeout: 60_000 });
  try {
    for (let i = 0; ; i++) {
      if (instance.exitCode !== null) throw new Error('the local-backend instance exited at start');
      if (
        await fetch(`${localBase}/readyz`).then(
          (r) => r.ok,
          () => false,
        )
      )
        break;
      if (i > 300) throw new Error('the local-backend instance was not ready after 30 s');
      await sleep(100);
    }
    const post = async (path, body) => {
      const res = await pool.request({
        method: 'POST',
        path,
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const text = await res.body.text();
      if (res.statusCode >= 400) throw new Error(`POST ${path}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
    };
    const command = ['/bin/bash', '-c', 'printf "%s %s\n" "$BENCH_KEY" "$EPOCHREALTIME" >> "$BENCH_STARTS"'];
    const task = (k) => ({
      key: k,
      command,
      backend: 'local',
      queue: 'bench-local',
      env: { BENCH_KEY: k, BENCH_STARTS: startsFile },
    });
    const wallMs = () => performance.timeOrigin + performance.now();
    const starts = () => {
      const out = new Map();
      let text = '';
      try {
        text = readFileSync(startsFile, 'utf8');
      } catch {}
      for (const line of text.split('\n')) {
        const [k, t] = line.split(' ');
        if (k && t) out.set(k, Number(t) * 1000);
      }
      return out;
    };
    const waitStarted = async (keys, deadlineMs) => {
      const t0 = performance.now();
      for (;;) {
        const seen = starts();
        if (keys.every((k) => seen.has(k)) || performance.now() - t0 > deadlineMs) return seen;
        await sleep(50);
      }
    };
    const warm = Array.from({ length: 50 }, (_, i) => `local-warm-${i}`);
    await post('/v1/workloads/batch', { workloads: warm.map(task) });
    await waitStarted(warm, 60_000);

    const meter = new CpuMeter({ api: () => [instance.pid], postgres: postgresPids });
    const load0 = process.cpuUsage();
    meter.sample('rate-start');
    const sentAt = new Map();
    const total = VS.rate * VS.seconds;
    const t0 = performance.now();
    const inflight = [];
    for (let i = 0; i < total; i++) {
      const wait = t0 + (i * 1000) / VS.rate - performance.now();
      if (wait > 1) await sleep(wait);
      const k = `local-rate-${i}`;
      sentAt.set(k, wallMs());
      inflight.push(post('/v1/workloads', task(k)));
    }
    await Promise.all(inflight);
    let seen = await waitStarted([...sentAt.keys()], 120_000);
    meter.sample('rate-end');
    const load = process.cpuUsage(load0);
    const lat = [...sentAt].filter(([k]) => seen.has(k)).map(([k, t]) => seen.get(k) - t);
    const rate = {
      jobs: total,
      started: lat.length,
      p50Ms: round(pct(lat, 50)),
      p99Ms: round(pct(lat, 99)),
      cpu: { ...meter.between('rate-start', 'rate-end'), load: (load.user + load.system) / 1000 },
    };
    const keys = Array.from({ length: VS.backlog }, (_, i) => `local-backlog-${i}`);
    const b0 = wallMs();
    for (let i = 0; i < keys.length; i += 100)
      await post('/v1/workloads/batch', { workloads: keys.slice(i, i + 100).map(task) });
    seen = await waitStarted(keys, 300_000);
    const done = keys.filter((k) => seen.has(k)).map((k) => seen.get(k));
    const backlog = {
      jobs: VS.backlog,
      started: done.length,
      perSecond: Math.round(done.length / ((Math.max(...done) - b0) / 1000)),
    };
    log(`  p50 ${rate.p50Ms} ms, p99 ${rate.p99Ms} ms; ${backlog.perSecond} tasks/s from the backlog`);
    return { rate, backlog, concurrency: availableParallelism() };
  } finally {
    await pool.destroy();
    await stop();
  }
}

/** A new empty database `name` on the bench's PostgreSQL server (dropped first if a former run left it). */
async function createDatabase(name) {
  const { default: pg } = await import('pg');
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  const url = new URL(databaseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** One system's figures in one scenario, the same fields whatever the system. */
function vsRecord(system, r) {
  if (r.error) return { error: r.error };
  const per = (ms, jobs) => (ms === undefined || ms === null || !jobs ? null : round(ms / jobs, 2));
  if (system === 'edge3') {
    const { rate, backlog } = r.phases;
    const req = rate.requests;
    return {
      p50Ms: round(rate.p50Ms),
      p99Ms: round(rate.p99Ms),
      perSecond: round(backlog.perSecond),
      requestsPerSecond: round(((req.fetch ?? 0) + (req.state ?? 0) + (req.heartbeat ?? 0)) / rate.seconds),
      serverCpuMsPerJob: per(r.cpu.rate.api, rate.fetched),
      dbCpuMsPerJob: pgPid ? per(r.cpu.rate.postgres, rate.fetched) : null,
      failedRequests: Object.values(r.errors).reduce((a, b) => a + b, 0),
      undispatched: rate.jobs - rate.fetched + (backlog.jobs - backlog.fetched),
    };
  }
  if (system === 'celery') {
    return {
      p50Ms: round(r.rate.p50Ms),
      p99Ms: round(r.rate.p99Ms),
      perSecond: round(r.backlog.perSecond),
      serverCpuMsPerJob: per(r.cpu.rate.worker, r.rate.started),
      dbCpuMsPerJob: per(r.cpu.rate.broker, r.rate.started),
      undispatched: r.rate.jobs - r.rate.started + (r.backlog.jobs - r.backlog.started),
    };
  }
  // airfleet, pull (rate.leased) or local (rate.started)
  const jobs = r.rate.leased ?? r.rate.started;
  return {
    p50Ms: r.rate.p50Ms,
    p99Ms: r.rate.p99Ms,
    perSecond: r.backlog.perSecond,
    requestsPerSecond: r.rate.requests === undefined ? undefined : round(r.rate.requests / (r.rate.cpu.wallMs / 1000)),
    serverCpuMsPerJob: per(r.rate.cpu.api, jobs),
    dbCpuMsPerJob: pgPid ? per(r.rate.cpu.postgres, jobs) : null,
    failedRequests: r.rate.failed,
    undispatched: r.rate.jobs - jobs + (r.backlog.jobs - (r.backlog.leased ?? r.backlog.started)),
  };
}

/** The scenarios that broke down (their cells are empty), and why, for the table's legend. */
function brokeDown(pull) {
  const lines = [];
  for (const [n, records] of Object.entries(pull)) {
    for (const [column, r] of Object.entries(records)) {
      if (r.error) lines.push(`${column}, ${Number(n).toLocaleString('en')} workers: no figures (${r.error}).`);
    }
  }
  return lines.length ? ` Broke down: ${lines.join(' ')}` : '';
}

/** What most of a peer's failed requests were, for the table's legend (edge3's are its api-server's 403s). */
function failuresOf() {
  const lines = [];
  for (const [n, columns] of Object.entries(vsPeers.pull)) {
    for (const [column, r] of Object.entries(columns ?? {})) {
      let total = 0;
      let forbidden = 0;
      for (const [what, count] of Object.entries(r.errors ?? {})) {
        total += count;
        if (what.endsWith(' 403')) forbidden += count;
      }
      if (total > 0 && forbidden * 2 > total) {
        lines.push(
          `${column}, ${Number(n).toLocaleString('en')} workers: ${forbidden.toLocaleString('en')} of ${total.toLocaleString('en')}.`,
        );
      }
    }
  }
  return lines.length
    ? " Failed requests that are mostly 403s: a worker request that waited in edge3's api-server longer than the" +
        ' token it was signed with lives ([api_auth] jwt_leeway, 30 s, as a real edge worker signs each request): ' +
        lines.join(' ')
    : '';
}

/** The side-by-side table, its text and the raw figures behind it, for the console, the JSON and README. */
function vsSummary() {
  const pull = {};
  for (const n of VS.workers) {
    pull[n] = { airfleet: vsRecord('airfleet', vsAirfleet.pull[n]) };
    for (const [column, r] of Object.entries(vsPeers.pull[n] ?? {})) pull[n][column] = vsRecord('edge3', r);
  }
  const push = { airfleet: vsRecord('airfleet', vsAirfleet.push) };
  if (vsPeers.push.celery) push.celery = vsRecord('celery', vsPeers.push.celery);
  const rows = vsRows({ pull, push, rate: VS.rate, backlog: VS.backlog });
  const m = machine();
  return {
    title:
      `Side by side (${new Date().toISOString().slice(0, 10)}, ${m.nproc} cores ${m.cpuModel}, ${m.memTotal} RAM, ` +
      `load average ${m.loadAverage.join(' ')} at start, ${m.loadAverageAtEnd.join(' ')} at end; ` +
      `PostgreSQL ${postgres ? `fsync ${fsync}` : 'of --database-url'}${quick ? '; --quick' : ''})`,
    text: formatVs(rows),
    legend:
      "vs X: airfleet's ratio to X, above 1 when airfleet does better (X's latency or CPU over airfleet's, " +
      "airfleet's rate over X's). Pull: airfleet's pool workers long-poll; edge3's poll at job_poll_interval. " +
      "Push: airfleet's local backend (a process per task) against a Celery prefork worker; both one slot per core." +
      brokeDown(pull) +
      failuresOf(),
    scenario: VS,
    rows: rows.map((r) => ({
      ...r,
      ratios: Object.fromEntries(['edge3-default', 'edge3-1s', 'celery'].map((c) => [c, ratio(r, c)])),
    })),
    records: { pull, push },
    raw: { airfleet: vsAirfleet, peers: vsPeers },
  };
}

/** Replaces README's side-by-side block (between its markers) with this run's table and machine. */
function writeReadmeTable(summary, m) {
  const file = join(root, 'README.md');
  const text = readFileSync(file, 'utf8');
  const open = '<!-- bench-vs-table -->';
  const close = '<!-- /bench-vs-table -->';
  const a = text.indexOf(open);
  const b = text.indexOf(close);
  if (a < 0 || b < a) throw new Error(`README.md has no ${open} ... ${close} block to write the table into`);
  // The load at the end is the bench's own (its simulated workers and the peers' servers): only the load
  // before it started says whether other work shared the machine.
  const busy = m.loadAverage[0] > m.nproc;
  const block = [
    `${summary.title.replace(/^Side by side/, 'Latest run')}.`,
    `Machine: \`nproc\` ${m.nproc}, ${m.cpuModel}; \`free -h\`: ${freeSummary(m.free)}.`,
    busy
      ? 'Other work ran on the machine at the same time (the load average at the start exceeds its cores): figures are noisy.'
      : "Nothing else of note ran on the machine at the same time (the load at the end is the bench's own).",
    '',
    '```text',
    summary.text,
    '```',
    '',
    summary.legend,
  ].join('\n');
  writeFileSync(file, `${text.slice(0, a + open.length)}\n${block}\n${text.slice(b)}`);
  log('README.md: the side-by-side table is updated');
}

/** `free -h`'s memory line as "23Gi total, 2.4Gi used, 21Gi available". */
function freeSummary(free) {
  const [head, mem] = (free ?? '').split('\n');
  if (!mem) return 'n/a';
  const names = head.trim().split(/\s+/);
  const values = mem.trim().split(/\s+/).slice(1);
  const at = (n) => values[names.indexOf(n)];
  return `${at('total')} total, ${at('used')} used, ${at('available')} available`;
}

/** The machine the figures come from: nproc, model, memory (free -h), load averages at start and now. */
function machine() {
  let free = null;
  try {
    free = execFileSync('free', ['-h'], { encoding: 'utf8' }).trim();
  } catch {}
  return {
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model?.trim() ?? 'unknown',
    memTotal: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    memFree: `${Math.round(freemem() / 2 ** 30)} GiB`,
    free,
    loadAverage: loadAtStart.map((x) => round(x, 1)),
    loadAverageAtEnd: loadavg().map((x) => round(x, 1)),
  };
}

/** Rows of [measure, value, target, met?]; a measure whose section did not run (--only) has no row. */
function DESIGN_TARGETS(r) {
  const rows = [];
  const row = (name, value, target, met) => value !== undefined && rows.push([name, value, target, met]);
  const atLeast = (name, value, min) => row(name, value, `>= ${min.toLocaleString('en')}`, value >= min);
  const atMost = (name, value, max) => row(name, value, `<= ${max}`, value <= max);
  // "Without p99 degrading more than 2x": against the same measure without the live load, when it ran.
  const within2x = (name, loaded, unloaded) =>
    unloaded === undefined
      ? row(name, loaded, '(no baseline)', null)
      : row(name, loaded, `<= 2x (${round(2 * unloaded)})`, loaded <= 2 * Math.max(unloaded, 5));
  atLeast('submissions/s, one per request', r.submitSingle?.perSecond, 1500);
  atMost('submit p99 at 1,000/s (ms)', r.submitAt1000?.p99Ms, 50);
  if (r.submitAt1000Connected) {
    atMost(`same, ${r.workersConnected} workers connected (ms)`, r.submitAt1000Connected.p99Ms, 50);
  }
  atLeast('submissions/s, batched', r.submitBatched?.perSecond, 10000);
  atMost('submit→lease p50 at half load (ms)', r.dispatch?.leaseP50Ms, 10);
  atMost('submit→lease p99 at half load (ms)', r.dispatch?.leaseP99Ms, 50);
  for (const c of r.dispatchCurve ?? []) {
    row(`submit→lease p50/p99 at ${c.submitsPerSecond}/s (ms)`, `${c.leaseP50Ms}/${c.leaseP99Ms}`, '(curve)', null);
  }
  atLeast('leases/s to waiting workers', r.leasesPerSecond, 1000);
  atLeast('connected pull workers', r.workersConnected, 2000);
  atLeast('live workloads held', r.liveWorkloads, 100000);
  if (r.submitAt1000WithLive) {
    within2x(
      'submit p99 at 1,000/s with live load (ms)',
      r.submitAt1000WithLive.p99Ms,
      (r.submitAt1000Connected ?? r.submitAt1000)?.p99Ms,
    );
  }
  if (r.dispatchWithLive) {
    within2x('submit→lease p99 with live load (ms)', r.dispatchWithLive.leaseP99Ms, r.dispatch?.leaseP99Ms);
  }
  if (r.batch) {
    row(
      `Batch SubmitJob/s, limiter at ${r.batch.limiterPerSecond}/s`,
      r.batch.submitPerSecond,
      `${r.batch.limiterPerSecond * 0.8}-${r.batch.limiterPerSecond * 1.05}`,
      r.batch.submitPerSecond >= r.batch.limiterPerSecond * 0.8 &&
        r.batch.submitPerSecond <= r.batch.limiterPerSecond * 1.05,
    );
    atMost('Batch workloads failed by throttling', r.batch.throttlingFailures, 0);
    atMost('Batch DescribeJobs calls per job per poll', r.batch.describeCallsPerJobPerPoll, 0.01);
  }
  if (r.nomad) {
    row('Nomad registers/s to the fake', r.nomad.submitPerSecond, '(fake: API traffic)', null);
    atMost('Nomad watch requests per job, whole life', r.nomad.watchRequestsPerJob, 2);
    row(
      'Nomad requests per job in all (register, logs, purge)',
      r.nomad.requestsPerJob,
      '(seed: 4-5 per heartbeat)',
      null,
    );
    atMost(`Nomad peak connections (${r.nomad.ran} jobs)`, r.nomad.peakConnections, 17);
  }
  if (r.vs) {
    // The targets (README, Benchmark): ahead of Edge by 10x on latency and dispatch rate; within 2x of Celery's latency, durable.
    const edge = r.vs.rows
      .filter((x) => /queue→worker p(50|99)|jobs\/s from a backlog/.test(x.measure))
      .flatMap((x) => [x.ratios['edge3-default'], x.ratios['edge3-1s']])
      .filter((x) => x !== null);
    if (edge.length) {
      const low = Math.min(...edge);
      row('vs Edge: lowest ratio, latency and dispatch rate', `${round(low, 2)}x`, '>= 10x', low >= 10);
    }
    const { airfleet: a, celery: c } = r.vs.records.push;
    if (c) {
      const p50 = a.p50Ms / c.p50Ms;
      const p99 = a.p99Ms / c.p99Ms;
      row(
        'vs Celery: submit→start p50/p99, x Celery',
        `${round(p50, 2)}x/${round(p99, 2)}x`,
        '<= 2x',
        p50 <= 2 && p99 <= 2,
      );
    }
  }
  atMost('service RSS idle (MB)', r.rssIdleMb, 100);
  atMost('service RSS loaded (MB)', r.rssLoadedMb, 300);
  return rows;
}
