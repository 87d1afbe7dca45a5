// The Nomad section of `npm run bench`: the nomad backend in its own service instance against the Nomad fake
// (integration/src/nomad-fake/), on the benchmark's database.
//
// 1. Submissions per second: `n` workloads with nothing placeable (the fake's no-capacity fault), so the
//    figure is the register traffic alone (no containers), from the first to the last `PUT /v1/jobs`.
// 2. Requests per job over its whole life: `m` workloads run to completion as real containers; every request
//    the fake answered, per route, divided by `m`. "Watch" requests are those that learn a job's state (event
//    stream, blocking queries, allocation and evaluation reads): the seed's executor makes 4-5 per job per
//    heartbeat; the target is under 2 per job over its life. The others are the register, the log copy (one
//    listing and one read per non-empty file) and the purge.
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';

const WATCH_ROUTES = [
  'GET /v1/event',
  'GET /v1/allocations',
  'GET /v1/evaluations',
  'GET /v1/allocation',
  'GET /v1/job',
];
const IMAGE = 'local/debian:bookworm-slim';

export function nomadAvailable() {
  try {
    execFileSync('docker', ['image', 'inspect', IMAGE], { stdio: 'pipe' });
    return { ok: true };
  } catch {
    return { ok: false, reason: `the image ${IMAGE} is missing (npm run images builds it)` };
  }
}

export async function benchNomad({ root, databaseUrl, admin, quick, log, freePort, sleep }) {
  const { startNomadFake } = await import('../../integration/src/nomad-fake/index.ts');
  const fake = await startNomadFake({});
  const n = quick ? 300 : 1000;
  const m = quick ? 50 : 200;
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [join(root, 'executor/bin/airfleet.mjs'), 'serve', '--port', String(port)], {
    env: {
      ...process.env,
      AIRFLEET_DATABASE_URL: databaseUrl,
      AIRFLEET_ADMIN_TOKEN: admin,
      AIRFLEET_LOG_LEVEL: 'warn',
      AIRFLEET_INSTANCE_NAME: 'bench-nomad',
      AIRFLEET_BACKENDS: 'pool,nomad',
      NOMAD_ADDR: fake.address,
      AIRFLEET_NOMAD_DEFAULT_IMAGE: IMAGE,
      AIRFLEET_NOMAD_JOB_PREFIX: 'airfleet-bench',
      // The fake node has no host volumes: mount none.
      AIRFLEET_NOMAD_HOST_VOLUMES: '',
      AIRFLEET_NOMAD_ALLOC_PENDING_TIMEOUT_SECONDS: '3600',
      AIRFLEET_SUBMIT_CONCURRENCY: '32',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await fake.stop();
  };
  const call = async (method, path, body) => {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${admin}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
    return res.json();
  };
  const submitMany = (count, queue, command) =>
    call('POST', '/v1/workloads/batch', {
      workloads: Array.from({ length: count }, (_, i) => ({
        key: `${queue}-${i}-${Math.random()}`,
        backend: 'nomad',
        queue,
        command,
      })),
    });
  const registers = () => fake.calls.get('PUT /v1/jobs') ?? 0;
  try {
    for (let i = 0; i < 600; i++) {
      if (
        await fetch(`${base}/readyz`).then(
          (r) => r.ok,
          () => false,
        )
      )
        break;
      if (child.exitCode !== null) throw new Error('the nomad service instance exited at start');
      await sleep(100);
    }

    log(`nomad: ${n} submissions to the fake (nothing placeable: no containers)`);
    fake.faults.noCapacity(true);
    const before = registers();
    const t0 = performance.now();
    const held = await submitMany(n, 'bench-nomad-hold', ['true']);
    let first = null;
    while (registers() - before < n && performance.now() - t0 < 300_000) {
      if (first === null && registers() > before) first = performance.now();
      await sleep(20);
    }
    const elapsed = (performance.now() - (first ?? t0)) / 1000;
    const submitPerSecond = Math.round((registers() - before) / elapsed);
    log(`  ${submitPerSecond} registers/s`);
    // Out of the way: cancelled (a job never placed ends with its stop).
    for (const r of held.results) await call('POST', `/v1/workloads/${r.workload.id}/cancel`);
    fake.faults.noCapacity(false);

    log(`nomad: ${m} workloads run to completion as containers, every request counted`);
    await sleep(2_000);
    const calls0 = new Map(fake.calls);
    fake.connections.peak = fake.connections.open;
    const t1 = performance.now();
    const ran = await submitMany(m, 'bench-nomad-run', ['sh', '-c', 'echo done']);
    const ids = new Set(ran.results.map((r) => r.workload.id));
    let states = {};
    let polls = 0;
    while (performance.now() - t1 < 600_000) {
      const { workloads } = await call('GET', `/v1/workloads?queue=bench-nomad-run&limit=1000`);
      const mine = workloads.filter((w) => ids.has(w.id));
      states = {};
      for (const w of mine) states[w.state] = (states[w.state] ?? 0) + 1;
      if (mine.length === m && mine.every((w) => ['succeeded', 'failed', 'cancelled'].includes(w.state))) break;
      if (++polls % 20 === 0) {
        const allocs = {};
        for (const a of fake.store.allocs.values()) allocs[a.ClientStatus] = (allocs[a.ClientStatus] ?? 0) + 1;
        log(
          `  waiting: workloads ${JSON.stringify(states)}, fake allocations ${JSON.stringify(allocs)}, ${registers()} registers`,
        );
      }
      await sleep(500);
    }
    // The purges go out after the ends are reported.
    await sleep(2_000);
    const byRoute = {};
    for (const [route, count] of fake.calls) {
      const delta = count - (calls0.get(route) ?? 0);
      if (delta > 0) byRoute[route] = Math.round((delta / m) * 1000) / 1000;
    }
    const total = Object.values(byRoute).reduce((a, b) => a + b, 0);
    const watch = WATCH_ROUTES.reduce((a, r) => a + (byRoute[r] ?? 0), 0);
    const result = {
      submitted: n,
      submitPerSecond,
      ran: m,
      states,
      seconds: Math.round((performance.now() - t1) / 100) / 10,
      watchRequestsPerJob: Math.round(watch * 1000) / 1000,
      requestsPerJob: Math.round(total * 100) / 100,
      requestsPerJobByRoute: byRoute,
      peakConnections: fake.connections.peak,
    };
    log(
      `  ${JSON.stringify(states)} in ${result.seconds} s; ${result.watchRequestsPerJob} watch and ${result.requestsPerJob} requests in all per job; peak ${result.peakConnections} connections`,
    );
    return result;
  } finally {
    await stop();
  }
}
