#!/usr/bin/env zx
// npm run demo: a real Airflow 3 running the example DAGs through airfleet, with nothing but Node and Python.
// Installs Airflow into executor/airflow/.venv on first use (scripts/setup-airflow.sh), starts an embedded
// executor service (PGlite) with its `local` backend, one local pull worker, and Airflow's api-server,
// scheduler and dag-processor (SQLite) on loopback; triggers every example DAG, prints the results and the
// Airflow URL, and keeps running until Ctrl-C (`--exit`: stop after the results).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { argv, chalk } from 'zx';

const root = new URL('..', import.meta.url).pathname;
process.chdir(root);
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(0)}s`;
const step = (text) => process.stdout.write(`${chalk.cyan(`[${elapsed().padStart(5)}]`)} ${text}\n`);

// DAGs the demo runs, and how each should end. airfleet_worker_loss needs a worker to be killed under it
// (the end-to-end suite does that); airfleet_long is shortened through its conf.
const EXPECTED = {
  airfleet_linear: 'success',
  airfleet_fan_out: 'success',
  airfleet_queues: 'success',
  airfleet_retry: 'success',
  airfleet_always_fails: 'failed',
  airfleet_chatty: 'success',
  airfleet_long: 'success',
  airfleet_mixed: 'success',
  airfleet_smoke: 'success',
};

step('Airflow venv (first use installs apache-airflow 3.3.2 from executor/airflow/requirements.lock, ~30 s)');
execFileSync('bash', ['scripts/setup-airflow.sh'], { stdio: 'inherit' });
if (!readdirSync('executor').includes('dist')) execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });

const { ServiceProcess } = await import('../integration/src/airfleet-process.ts');
const { AIRFLOW_VENV, AirflowDeployment, EXAMPLE_DAGS } = await import('../integration/src/airflow.ts');

const scratch = mkdtempSync(join(tmpdir(), 'airfleet-demo-'));
const workerHome = join(scratch, 'worker-home');
mkdirSync(join(workerHome, 'airflow'), { recursive: true });
// Tasks see only PATH, HOME and their workload's env: their Airflow reads $HOME/airflow/airflow.cfg.
writeFileSync(
  join(workerHome, 'airflow/airflow.cfg'),
  `[core]\ndags_folder = ${EXAMPLE_DAGS}\nload_examples = False\n`,
);
const env = { PATH: `${join(AIRFLOW_VENV, 'bin')}:${process.env.PATH}`, HOME: workerHome, LANG: 'C.UTF-8' };

let service;
let worker;
let airflow;
const stop = async () => {
  await airflow?.stop().catch(() => undefined);
  await worker?.kill('SIGTERM');
  await service?.stop();
  rmSync(scratch, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  step('stopping');
  void stop().then(() => process.exit(0));
});

try {
  service = await ServiceProcess.start({
    backends: 'pool,local',
    heartbeatIntervalMs: 2_000,
    heartbeatTimeoutMs: 20_000,
    env,
  });
  step(`executor service on ${service.url} (embedded PGlite)`);
  const { token } = await service.client.request('POST', '/v1/tokens', {
    body: { name: 'airflow-demo', scopes: ['submit', 'read'] },
  });
  const tokenFile = join(scratch, 'airfleet.token');
  writeFileSync(tokenFile, token, { mode: 0o600 });
  const workDir = join(scratch, 'work');
  mkdirSync(workDir);
  worker = service.worker(
    'demo-worker',
    ['--queues', 'default,light,heavy', '--concurrency', '8', '--work-dir', workDir],
    env,
  );
  step('pull worker demo-worker: queues default, light, heavy; 8 slots; process runtime');

  step('Airflow: db migrate, then api-server, scheduler and dag-processor (SQLite; about a minute)');
  airflow = await AirflowDeployment.start({
    databaseUrl: `sqlite:///${join(scratch, 'airflow.db')}`,
    dagsFolder: EXAMPLE_DAGS,
    airfleet: { url: service.url, token_file: tokenFile, feed_wait_ms: 200 },
    config: { core: { parallelism: 16 } },
  });
  step(`Airflow on ${chalk.bold(airflow.apiUrl)}`);
  const dagIds = Object.keys(EXPECTED);
  await airflow.waitForDags(dagIds);
  const runs = new Map();
  for (const dagId of dagIds) {
    runs.set(dagId, await airflow.trigger(dagId, dagId === 'airfleet_long' ? { seconds: 20 } : {}));
  }
  step(`triggered ${dagIds.length} DAG runs; waiting for them`);
  const rows = await Promise.all(
    dagIds.map(async (dagId) => {
      const t0 = Date.now();
      const state = await airflow.waitForRun(dagId, runs.get(dagId), 15 * 60_000);
      const tis = await airflow.taskInstances(dagId, runs.get(dagId));
      const counts = {};
      for (const ti of tis) counts[ti.state] = (counts[ti.state] ?? 0) + 1;
      const retried = tis.filter((ti) => ti.try_number > 1).map((ti) => `${ti.task_id} try ${ti.try_number}`);
      return {
        dagId,
        state,
        ok: state === EXPECTED[dagId],
        tasks: Object.entries(counts)
          .map(([s, n]) => `${n} ${s}`)
          .join(', '),
        retried: retried.join(', '),
        seconds: ((Date.now() - t0) / 1000).toFixed(0),
      };
    }),
  );
  const headers = ['', 'DAG', 'expected', 'run', 'tasks', 'retried', 'waited'];
  const table = rows.map((r) => [
    r.ok ? chalk.green('✓') : chalk.red('✗'),
    r.dagId,
    EXPECTED[r.dagId],
    r.state,
    r.tasks,
    r.retried,
    `${r.seconds}s`,
  ]);
  const ESC = String.fromCharCode(27);
  const plain = (s) =>
    String(s)
      .split(ESC)
      .map((part, i) => (i === 0 ? part : part.replace(/^\[[0-9;]*m/, '')))
      .join('');
  const widths = headers.map((h, i) => Math.max(h.length, ...table.map((r) => plain(r[i]).length)));
  const fmt = (r) =>
    r
      .map((c, i) => String(c) + ' '.repeat(widths[i] - plain(c).length))
      .join('  ')
      .trimEnd();
  console.log(`\n${fmt(headers)}\n${fmt(widths.map((w) => '-'.repeat(w)))}\n${table.map(fmt).join('\n')}\n`);
  const bad = rows.filter((r) => !r.ok);
  console.log(
    bad.length
      ? chalk.red(`demo: ${bad.length} of ${rows.length} runs did not end as expected (${elapsed()})`)
      : chalk.green(`demo: all ${rows.length} runs ended as expected (${elapsed()})`),
  );
  console.log(
    `\nAirflow UI: ${chalk.bold(airflow.apiUrl)}  user ${chalk.bold('admin')}  password ${chalk.bold(airflow.password)}`,
  );
  console.log(
    `airfleet:   ${service.url}  (npx airfleet status --api-url ${service.url} --token <token in ${tokenFile}>)`,
  );
  if (argv.exit) {
    await stop();
    process.exit(bad.length ? 1 : 0);
  }
  console.log(chalk.gray('\nRunning until Ctrl-C.'));
  if (argv['print-ready']) console.log(`DEMO_READY ${airflow.apiUrl} ${service.url} ${tokenFile} ${airflow.password}`);
} catch (error) {
  console.error(chalk.red(`\ndemo: ${error.message}`));
  console.error(airflow?.tails?.() ?? '');
  await stop();
  process.exit(1);
}
