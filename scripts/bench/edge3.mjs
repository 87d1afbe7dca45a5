// The Edge executor peer (`npm run bench -- --vs edge3`): Airflow 3.3.2's api-server with the
// apache-airflow-providers-edge3 worker API, on its own database of the benchmark's PostgreSQL, driven by
// scripts/bench/edge3_driver.py (the scheduler's queue_workload/sync, and simulated `airflow edge worker`s).
//
// Configuration (written to .bench/edge3/home/airflow.cfg, mode 0600, fresh each run): the provider's
// defaults except what running it needs — executor EdgeExecutor, [edge] api_enabled and api_url, the
// EdgeDBManager in [database] external_db_managers, a random [api_auth] jwt_secret, the api-server on
// 127.0.0.1 with as many workers as cores (its own documentation's advice; its default is 1).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stopChild } from './children.mjs';
import { CpuMeter } from './cpu.mjs';
import { benchDir, ensureVenv, log, root } from './venv.mjs';

const AIRFLOW = 'apache-airflow[postgres]==3.3.2';
const EDGE3 = 'apache-airflow-providers-edge3==5.1.0';
export const EDGE3_VERSION = EDGE3.split('==')[1];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs a program to its end; its output goes to `logFile`; throws naming the log when it fails. */
function runLogged(cmd, args, env, logFile, what) {
  return new Promise((resolve, reject) => {
    const out = createWriteStream(logFile, { flags: 'a' });
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(out);
    child.stderr.pipe(out);
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`edge3: ${what} exited with ${code}; its output is in ${logFile}`)),
    );
  });
}

/**
 * Starts the Edge peer on a database `createDatabase(name)` makes (and returns the URL of) on the benchmark's
 * PostgreSQL; `postgresPids()` are that server's processes, for its CPU. Returns { run(scenario), stop() }.
 */
export async function startEdge3({ createDatabase, postgresPids }) {
  const venv = ensureVenv({
    name: 'edge3',
    locks: [join(root, 'executor/airflow/requirements.lock'), join(root, 'scripts/bench/edge3.lock')],
    requirements: [AIRFLOW, EDGE3],
  });
  const home = join(benchDir, 'edge3/home');
  rmSync(home, { recursive: true, force: true });
  mkdirSync(join(home, 'dags'), { recursive: true });
  mkdirSync(join(home, 'logs'), { recursive: true });
  const dbUrl = await createDatabase('airfleet_bench_edge3');
  const port = await freePort();
  const apiUrl = `http://127.0.0.1:${port}/edge_worker/v1/`;
  const u = new URL(dbUrl);
  // Over the same Unix socket as airfleet when the bench connects so (`?host=<directory>`): SQLAlchemy takes
  // the socket as libpq's host parameter only with no host in the URL's authority; the directory is written
  // out, not percent-encoded, because airflow.cfg reads `%` as the start of an interpolation.
  const sqlAlchemyUrl = u.searchParams.has('host')
    ? `postgresql+psycopg2://${u.username}:${u.password}@${u.pathname}?host=${u.searchParams.get('host')}&port=${u.searchParams.get('port')}`
    : Object.assign(u, { protocol: 'postgresql+psycopg2:' }).toString();
  const cfg = `[core]
executor = airflow.providers.edge3.executors.EdgeExecutor
load_examples = False
dags_folder = ${join(home, 'dags')}
[database]
sql_alchemy_conn = ${sqlAlchemyUrl}
external_db_managers = airflow.providers.edge3.models.db.EdgeDBManager
[api]
host = 127.0.0.1
port = ${port}
workers = ${availableParallelism()}
base_url = http://127.0.0.1:${port}
secret_key = ${randomBytes(32).toString('hex')}
[api_auth]
jwt_secret = ${randomBytes(64).toString('hex')}
[edge]
api_enabled = True
api_url = ${apiUrl}
[logging]
base_log_folder = ${join(home, 'logs')}
logging_level = WARNING
`;
  writeFileSync(join(home, 'airflow.cfg'), cfg, { mode: 0o600 });
  const env = {
    PATH: `${join(venv, 'bin')}:${process.env.PATH}`,
    HOME: process.env.HOME ?? '/tmp',
    AIRFLOW_HOME: home,
    PYTHONWARNINGS: 'ignore',
  };
  const airflow = join(venv, 'bin/airflow');
  const logFile = join(benchDir, 'edge3/airflow.log');
  rmSync(logFile, { force: true });
  log('edge3: airflow db migrate (Airflow and the edge3 tables)');
  let t0 = Date.now();
  await runLogged(airflow, ['db', 'migrate'], env, logFile, 'airflow db migrate');
  log(`edge3:   migrated in ${Math.round((Date.now() - t0) / 1000)} s; starting the api-server on 127.0.0.1:${port}`);
  const out = createWriteStream(logFile, { flags: 'a' });
  const server = spawn(airflow, ['api-server', '--host', '127.0.0.1', '--port', String(port)], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: stopping it stops its uvicorn workers too
  });
  server.stdout.pipe(out);
  server.stderr.pipe(out);
  t0 = Date.now();
  for (;;) {
    if (server.exitCode !== null) throw new Error(`edge3: the api-server exited at start; see ${logFile}`);
    const ok = await fetch(`${apiUrl}health`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() - t0 > 180_000) throw new Error(`edge3: the api-server was not up after 180 s; see ${logFile}`);
    await sleep(500);
  }
  log(`edge3:   api-server up in ${Math.round((Date.now() - t0) / 1000)} s (${availableParallelism()} workers)`);

  let simPids = [];
  /** The driver of the scenario under way, if any. */
  let current = null;
  const meter = new CpuMeter({ api: () => [server.pid], postgres: postgresPids, load: () => simPids });

  /** One scenario: { workers, pollInterval, concurrency, rate, seconds, backlog }. */
  async function run(s) {
    const args = [
      join(root, 'scripts/bench/edge3_driver.py'),
      'run',
      `--api-url=${apiUrl}`,
      `--name-prefix=w${s.workers}p${s.pollInterval}`,
      `--workers=${s.workers}`,
      `--sims=${Math.max(1, Math.ceil(s.workers / 1000))}`,
      `--concurrency=${s.concurrency}`,
      `--poll-interval=${s.pollInterval}`,
      `--rate=${s.rate}`,
      `--seconds=${s.seconds}`,
      `--backlog=${s.backlog}`,
      ...(s.rateDrainSeconds ? [`--rate-drain-seconds=${s.rateDrainSeconds}`] : []),
      ...(s.backlogDrainSeconds ? [`--backlog-drain-seconds=${s.backlogDrainSeconds}`] : []),
    ];
    // Its own process group, with its worker simulators: a scenario past its bound, or a Ctrl-C of the bench
    // (stop), ends them all.
    const driver = spawn(join(venv, 'bin/python'), args, { env, stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    current = driver;
    let result = null;
    const exited = new Promise((resolve) => driver.once('exit', resolve));
    let late = false;
    const bound = s.scenarioSeconds
      ? setTimeout(() => {
          late = true;
          void stopChild(driver, { group: true });
        }, s.scenarioSeconds * 1000)
      : null;
    for await (const line of createInterface({ input: driver.stdout })) {
      if (line.startsWith('@mark ')) meter.sample(line.slice(6));
      else if (line.startsWith('{')) {
        const msg = JSON.parse(line);
        if (msg.simPids) simPids = msg.simPids;
        if (msg.result) result = msg.result;
      }
    }
    const code = await exited;
    clearTimeout(bound);
    current = null;
    if (late) {
      // Seen with 2,000 workers: the api-server fell so far behind that registering the fleet alone took
      // many minutes. The scenario's columns stay empty and the run goes on.
      throw new Error(`edge3: the scenario did not finish within ${s.scenarioSeconds} s (the api-server fell behind)`);
    }
    if (code !== 0 || !result) throw new Error(`edge3: the driver exited with ${code} (scenario ${JSON.stringify(s)})`);
    result.cpu = {
      rate: meter.between('rate-start', 'rate-end'),
      backlog: meter.between('backlog-start', 'backlog-end'),
    };
    return result;
  }

  const stop = async () => {
    await stopChild(current, { group: true });
    await stopChild(server, { group: true });
  };
  return { run, stop, apiUrl, dbUrl, logFile };
}

async function freePort() {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
