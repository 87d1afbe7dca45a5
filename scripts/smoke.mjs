#!/usr/bin/env zx
// End-to-end smoke run. With no arguments: starts an embedded executor service (PGlite in a temporary
// directory, no Docker, no cloud) and two local pull workers on two queues, submits a mix of workloads,
// waits, checks every outcome and log, and prints a results table. Exits 1 on any mismatch.
//
//   npx zx scripts/smoke.mjs                              # embedded default
//   npx zx scripts/smoke.mjs --api-url URL --token T      # against a deployed service whose workers serve
//                                                     # the queues named by --queues (default smoke-a,smoke-b)
//   npx zx scripts/smoke.mjs --env staging --airflow-url URL ...   # a deployment: Airflow's smoke DAG and one
//                                                     # workload per backend (scripts/smoke-deployment.mjs)
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argv, chalk } from 'zx';
import { ApiClient } from '../executor/src/client/api-client.ts';

if (argv.env || argv['airflow-url'] || argv['executor-url']) {
  const { smokeDeployment } = await import('./smoke-deployment.mjs');
  process.exit(await smokeDeployment(argv));
}

const root = new URL('..', import.meta.url).pathname;
const cli = join(root, 'executor/bin/airfleet.mjs');
const [queueA, queueB] = String(argv.queues ?? 'smoke-a,smoke-b').split(',');
const started = Date.now();
const children = [];
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const step = (text) => process.stdout.write(`${chalk.cyan(`[${elapsed().padStart(6)}]`)} ${text}\n`);

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function launch(name, args, env = {}) {
  const child = spawn(process.execPath, [cli, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = [];
  const keep = (d) => log.push(d.toString());
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  children.push({ name, child, log });
  return child;
}

function cleanup(dataDir) {
  for (const { child } of children) if (child.exitCode === null) child.kill('SIGTERM');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}

async function waitFor(what, fn, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let dataDir = null;
let client;
try {
  if (argv['api-url']) {
    client = new ApiClient(argv['api-url'], argv.token ?? process.env.AIRFLEET_TOKEN);
    step(`using the service at ${argv['api-url']}`);
  } else {
    dataDir = mkdtempSync(join(tmpdir(), 'airfleet-smoke-'));
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    step(`starting an embedded executor service on ${url} (PGlite in ${dataDir})`);
    const env = { AIRFLEET_DATA_DIR: dataDir, AIRFLEET_LOG_LEVEL: 'warn', AIRFLEET_HEARTBEAT_INTERVAL_MS: '1000' };
    launch('service', ['serve', '--port', String(port)], env);
    await waitFor('the service to answer /healthz', async () => (await fetch(`${url}/healthz`)).ok);
    const token = await waitFor('the admin token', () => readFileSync(join(dataDir, 'admin.token'), 'utf8').trim());
    client = new ApiClient(url, token);
    const workerEnv = { ...env, AIRFLEET_API_URL: url, AIRFLEET_TOKEN: token };
    launch(
      'worker alpha',
      ['worker', '--name', 'alpha', '--queues', queueA, '--concurrency', '2', '--kill-grace', '2'],
      workerEnv,
    );
    launch(
      'worker beta',
      ['worker', '--name', 'beta', '--queues', queueB, '--concurrency', '3', '--kill-grace', '2'],
      workerEnv,
    );
    await waitFor('both workers to register', async () => {
      const { workers } = await client.request('GET', '/v1/workers');
      return workers.filter((w) => ['idle', 'running'].includes(w.state)).length >= 2;
    });
    step(
      `workers ${chalk.bold('alpha')} (${queueA}, 2 slots) and ${chalk.bold('beta')} (${queueB}, 3 slots) registered`,
    );
  }

  const run = Date.now().toString(36);
  const sh = (script) => ['sh', '-c', script];
  const cases = [
    {
      name: 'success',
      queue: queueA,
      command: sh('echo smoke-ok'),
      expect: { state: 'succeeded', exitCode: 0, stdout: 'smoke-ok' },
    },
    {
      name: 'failure with exit code',
      queue: queueB,
      command: sh('echo about to fail >&2; exit 7'),
      expect: { state: 'failed', reason: 'task_error', exitCode: 7, stderr: 'about to fail' },
    },
    {
      name: 'slot-heavy (3 of 3 slots)',
      queue: queueB,
      poolSlots: 3,
      command: sh('sleep 1; echo heavy-done'),
      expect: { state: 'succeeded', exitCode: 0, stdout: 'heavy-done', runsAlone: true },
    },
    {
      name: 'blocker 1',
      queue: queueA,
      command: sh('sleep 1.5; echo b1'),
      expect: { state: 'succeeded', exitCode: 0, stdout: 'b1' },
    },
    {
      name: 'blocker 2',
      queue: queueA,
      // Longer than blocker 1: one slot frees first, and the high priority task must be the one to take it
      // (two slots freeing at once would lease both in one pass, and their starts would race by milliseconds).
      command: sh('sleep 3; echo b2'),
      expect: { state: 'succeeded', exitCode: 0, stdout: 'b2' },
    },
    {
      name: 'low priority',
      queue: queueA,
      priorityWeight: 1,
      command: sh('echo low'),
      expect: { state: 'succeeded', exitCode: 0, stdout: 'low' },
    },
    {
      name: 'high priority',
      queue: queueA,
      priorityWeight: 100,
      command: sh('echo high'),
      expect: { state: 'succeeded', exitCode: 0, stdout: 'high', startsBefore: 'low priority' },
    },
    {
      name: 'cancelled',
      queue: queueB,
      command: sh('echo started; sleep 60'),
      expect: { state: 'cancelled', reason: 'cancelled', stdout: 'started' },
    },
  ];
  // The embedded service also runs the `local` push backend (tasks as processes of the service host,
  // through the dispatcher); a deployed service may not, unless asked with --local.
  if (!argv['api-url'] || argv.local) {
    cases.push(
      {
        name: 'local backend: success',
        queue: queueA,
        backend: 'local',
        command: sh('echo local-ok; echo local-err >&2'),
        expect: { state: 'succeeded', exitCode: 0, stdout: 'local-ok', stderr: 'local-err' },
      },
      {
        name: 'local backend: exit code',
        queue: queueB,
        backend: 'local',
        command: sh('exit 3'),
        expect: { state: 'failed', reason: 'task_error', exitCode: 3 },
      },
    );
  }

  const feedStart = (await client.request('GET', '/v1/events', { query: { after: 0, limit: 1 } })).last;
  step(`submitting ${cases.length} workloads to ${queueA} and ${queueB}`);
  // Submitted in order: the blockers fill alpha's two slots so the low and high priority tasks queue up
  // behind them; when blocker 1 frees one slot, the high one (submitted last) must be the one that starts.
  for (const c of cases) {
    const body = {
      key: `smoke-${run}-${c.name.replace(/\W+/g, '-')}`,
      command: c.command,
      queue: c.queue,
      poolSlots: c.poolSlots ?? 1,
    };
    if (c.priorityWeight !== undefined) body.priorityWeight = c.priorityWeight;
    if (c.backend) body.backend = c.backend;
    c.workload = await client.request('POST', '/v1/workloads', { body });
    if (c.name === 'blocker 2')
      await waitFor(
        'the blockers to start',
        async () => (await client.request('GET', `/v1/workloads/${c.workload.id}`)).state === 'running',
        10_000,
      );
  }

  const cancelled = cases.find((c) => c.name === 'cancelled');
  await waitFor(
    'the task to cancel to start',
    async () => (await client.request('GET', `/v1/workloads/${cancelled.workload.id}/logs`)).data !== '',
    15_000,
  );
  await client.request('POST', `/v1/workloads/${cancelled.workload.id}/cancel`);
  step('cancel requested for the running "cancelled" workload');

  // Progress: follow the change feed until every workload has ended.
  const ids = new Set(cases.map((c) => c.workload.id));
  const states = new Map(cases.map((c) => [c.workload.id, 'queued']));
  let after = feedStart;
  let lastLine = '';
  const deadline = Date.now() + 60_000;
  while ([...states.values()].some((s) => !['succeeded', 'failed', 'cancelled'].includes(s))) {
    if (Date.now() > deadline) throw new Error('workloads did not all finish within 60 s');
    const { events, last } = await client.request('GET', '/v1/events', {
      query: { after, waitMs: 2_000 },
      timeoutMs: 10_000,
    });
    after = last;
    for (const e of events) if (ids.has(e.workloadId)) states.set(e.workloadId, e.state);
    const tally = {};
    for (const s of states.values()) tally[s] = (tally[s] ?? 0) + 1;
    const line = Object.entries(tally)
      .map(([s, n]) => `${s}=${n}`)
      .join(' ');
    if (process.stdout.isTTY)
      process.stdout.write(`\r${chalk.cyan(`[${elapsed().padStart(6)}]`)} progress: ${line}\u001b[K`);
    else if (line !== lastLine) step(`progress: ${line}`);
    lastLine = line;
  }
  if (process.stdout.isTTY) process.stdout.write('\n');

  // Check every outcome and log.
  for (const c of cases) {
    c.final = await client.request('GET', `/v1/workloads/${c.workload.id}`);
    const log = async (stream) =>
      Buffer.from(
        (await client.request('GET', `/v1/workloads/${c.workload.id}/logs`, { query: { stream } })).data,
        'base64',
      ).toString();
    c.stdout = await log('stdout');
    c.stderr = await log('stderr');
  }
  const byName = Object.fromEntries(cases.map((c) => [c.name, c]));
  const t = (iso) => (iso ? Date.parse(iso) : Number.NaN);
  for (const c of cases) {
    const problems = [];
    const f = c.final;
    const e = c.expect;
    if (f.state !== e.state) problems.push(`state ${f.state}, expected ${e.state}`);
    if (e.reason && f.reason !== e.reason) problems.push(`reason ${f.reason}, expected ${e.reason}`);
    if (e.exitCode !== undefined && f.exitCode !== e.exitCode)
      problems.push(`exit ${f.exitCode}, expected ${e.exitCode}`);
    if (e.stdout && !c.stdout.includes(e.stdout)) problems.push(`stdout lacks '${e.stdout}'`);
    if (e.stderr && !c.stderr.includes(e.stderr)) problems.push(`stderr lacks '${e.stderr}'`);
    if (e.startsBefore && !(t(f.startedAt) < t(byName[e.startsBefore].final.startedAt)))
      problems.push(`did not start before '${e.startsBefore}'`);
    if (e.runsAlone) {
      const overlapping = cases.filter(
        (o) =>
          o !== c &&
          o.final.workerName === f.workerName &&
          t(o.final.startedAt) < t(f.finishedAt) &&
          t(o.final.finishedAt) > t(f.startedAt),
      );
      if (overlapping.length) problems.push(`shared its worker with ${overlapping.map((o) => o.name).join(', ')}`);
    }
    c.problems = problems;
  }

  const rows = cases.map((c) => {
    const f = c.final;
    const wait = f.startedAt ? `${t(f.startedAt) - t(f.createdAt)} ms` : '-';
    const ran = f.startedAt && f.finishedAt ? `${t(f.finishedAt) - t(f.startedAt)} ms` : '-';
    const got = `${f.state}${f.reason ? `/${f.reason}` : ''}${f.exitCode !== null ? ` exit ${f.exitCode}` : ''}`;
    return [
      c.problems.length ? chalk.red('FAIL') : chalk.green('ok'),
      c.name,
      f.queue,
      f.workerName ?? `(${f.backend})`,
      got,
      wait,
      ran,
      c.problems.join('; '),
    ];
  });
  const headers = ['', 'case', 'queue', 'ran on', 'outcome', 'queued→started', 'run time', 'problems'];
  // chalk's colour codes take no room on screen: leave them out when measuring column widths.
  const ESC = String.fromCharCode(27);
  const plain = (s) =>
    String(s)
      .split(ESC)
      .map((part, i) => (i === 0 ? part : part.replace(/^\[[0-9;]*m/, '')))
      .join('');
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => plain(r[i]).length)));
  const fmt = (r) =>
    r
      .map((cell, i) => String(cell) + ' '.repeat(widths[i] - plain(cell).length))
      .join('  ')
      .trimEnd();
  console.log(`\n${fmt(headers)}\n${fmt(widths.map((w) => '-'.repeat(w)))}\n${rows.map(fmt).join('\n')}\n`);
  const failed = cases.filter((c) => c.problems.length);
  if (failed.length) {
    console.log(chalk.red(`smoke: ${failed.length} of ${cases.length} cases failed (${elapsed()})`));
    process.exitCode = 1;
  } else {
    console.log(chalk.green(`smoke: all ${cases.length} cases passed in ${elapsed()}`));
  }
} catch (error) {
  console.error(chalk.red(`\nsmoke: ${error.message}`));
  for (const { name, log } of children) {
    if (log.length)
      console.error(chalk.gray(`--- last output of ${name} ---\n${log.join('').split('\n').slice(-15).join('\n')}`));
  }
  process.exitCode = 1;
} finally {
  cleanup(dataDir);
}
