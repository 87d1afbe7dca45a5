// The deployment mode of scripts/smoke.mjs: against a deployed Airflow and executor service, trigger the
// `airfleet_smoke` DAG (executor/airflow/examples/airfleet_smoke.py) through Airflow's REST API and submit one
// direct workload per backend the environment configures; print a table; return the exit code.
//
//   npx zx scripts/smoke.mjs --env staging --airflow-url URL [--executor-url URL] [--image IMAGE]
//   npx zx scripts/smoke.mjs --airflow-url URL --executor-url URL [--queues a,b] [--image IMAGE]
//
// Credentials: --token (AIRFLEET_TOKEN: scopes submit,read), --airflow-user (default admin) and
// --airflow-password (AIRFLOW_PASSWORD) for the simple auth manager's POST /auth/token, or --airflow-token
// (AIRFLOW_TOKEN) for a bearer token got otherwise.
import { chalk } from 'zx';
import { ApiClient } from '../executor/src/client/api-client.ts';

const SMOKE_DAG = 'airfleet_smoke';
const MARK = 'airfleet-smoke-ok';

class UsageError extends Error {}

async function targetsOf(argv) {
  const targets = { executorUrl: argv['executor-url'] ?? process.env.AIRFLEET_API_URL, backends: [] };
  let poolQueues = argv.queues ? String(argv.queues).split(',') : null;
  if (argv.env) {
    const { environments } = await import('../stacks/src/config/environments/index.ts');
    const env = environments[argv.env];
    if (!env)
      throw new UsageError(`--env ${argv.env}: no such environment (known: ${Object.keys(environments).join(', ')})`);
    if (!targets.executorUrl && env.executor.runtime === 'nomad') targets.executorUrl = env.executor.url;
    poolQueues ??= (env.workerPools ?? []).map((p) => p.queue);
    if (env.nomad) targets.backends.push({ backend: 'nomad', queue: env.nomad.clientPools?.[0]?.queue ?? 'default' });
    if (env.batch) targets.backends.push({ backend: 'batch', queue: env.batch.jobQueues?.[0]?.name ?? 'default' });
  }
  for (const queue of [...new Set(poolQueues ?? ['default'])]) targets.backends.unshift({ backend: 'pool', queue });
  if (!targets.executorUrl) {
    throw new UsageError(
      '--executor-url is required (the environment runs the executor on ECS: use its load balancer URL)',
    );
  }
  return targets;
}

async function airflowClient(argv) {
  const url = String(argv['airflow-url'] ?? process.env.AIRFLEET_AIRFLOW_URL ?? '').replace(/\/+$/, '');
  if (!url)
    throw new UsageError('--airflow-url is required (the Airflow api-server, e.g. https://airflow.staging.example)');
  let token = argv['airflow-token'] ?? process.env.AIRFLOW_TOKEN;
  if (!token) {
    const password = argv['airflow-password'] ?? process.env.AIRFLOW_PASSWORD;
    if (!password)
      throw new UsageError('--airflow-password (AIRFLOW_PASSWORD) or --airflow-token (AIRFLOW_TOKEN) is required');
    const response = await fetch(`${url}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: argv['airflow-user'] ?? 'admin', password }),
    }).catch((e) => {
      throw new Error(`cannot reach Airflow at ${url} (${e.cause?.code ?? e.message})`);
    });
    if (!response.ok) throw new Error(`Airflow POST /auth/token: HTTP ${response.status} ${await response.text()}`);
    token = (await response.json()).access_token;
  }
  return async (method, path, body) => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, accept: 'application/json', 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`Airflow ${method} ${path}: HTTP ${response.status} ${text.slice(0, 500)}`);
    return JSON.parse(text);
  };
}

async function until(what, fn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

async function smokeDag(airflow, timeoutMs) {
  const t0 = Date.now();
  await airflow('PATCH', `/api/v2/dags/${SMOKE_DAG}`, { is_paused: false });
  const { dag_run_id: runId } = await airflow('POST', `/api/v2/dags/${SMOKE_DAG}/dagRuns`, {
    logical_date: null,
    conf: {},
  });
  const base = `/api/v2/dags/${SMOKE_DAG}/dagRuns/${encodeURIComponent(runId)}`;
  const state = await until(
    `the ${SMOKE_DAG} run`,
    async () => {
      const run = await airflow('GET', base);
      return ['success', 'failed'].includes(run.state) ? run.state : null;
    },
    timeoutMs,
  );
  const { task_instances: tis } = await airflow('GET', `${base}/taskInstances?limit=100`);
  const problems = [];
  if (state !== 'success') problems.push(`run ${state}`);
  for (const ti of tis) {
    if (ti.state !== 'success') problems.push(`${ti.task_id}[${ti.map_index}] ${ti.state}`);
    if (ti.executor && ti.executor !== 'AirfleetExecutor') problems.push(`${ti.task_id} ran on ${ti.executor}`);
  }
  const { content } = await airflow('GET', `${base}/taskInstances/hello/logs/1?map_index=-1`);
  if (!content.some((l) => String(l.event).startsWith('airfleet smoke:'))) problems.push('hello log lacks its line');
  return {
    check: `DAG ${SMOKE_DAG}`,
    target: `run ${runId}`,
    outcome: `${state} (${tis.length} tasks)`,
    seconds: (Date.now() - t0) / 1000,
    problems,
  };
}

async function directWorkload(client, { backend, queue }, image, timeoutMs) {
  const t0 = Date.now();
  const row = { check: `workload on ${backend}`, target: `queue ${queue}`, outcome: '', seconds: 0, problems: [] };
  if (backend !== 'pool' && !image) {
    return { ...row, outcome: 'skipped', problems: [`skipped: ${backend} needs a container image (--image)`] };
  }
  const submitted = await client.request('POST', '/v1/workloads', {
    body: {
      key: `smoke-${backend}-${queue}-${Date.now().toString(36)}`,
      command: ['sh', '-c', `echo ${MARK}`],
      queue,
      backend,
      ...(image ? { image } : {}),
    },
    retry: { retryForMs: 10_000 },
  });
  const done = await until(
    `workload ${submitted.id}`,
    async () => {
      const w = await client.request('GET', `/v1/workloads/${submitted.id}`);
      return ['succeeded', 'failed', 'cancelled'].includes(w.state) ? w : null;
    },
    timeoutMs,
  );
  const logs = await client.request('GET', `/v1/workloads/${submitted.id}/logs`, { query: { stream: 'stdout' } });
  if (done.state !== 'succeeded') row.problems.push(`${done.state}: ${done.reason ?? ''} ${done.message ?? ''}`.trim());
  if (!Buffer.from(logs.data, 'base64').toString().includes(MARK)) row.problems.push('stdout lacks the marker');
  return {
    ...row,
    outcome: done.state + (done.workerName ? ` on ${done.workerName}` : ''),
    seconds: (Date.now() - t0) / 1000,
  };
}

function printTable(rows) {
  const headers = ['', 'check', 'target', 'outcome', 'time', 'problems'];
  const cells = rows.map((r) => [
    r.problems.length === 0 ? chalk.green('✓') : r.outcome === 'skipped' ? chalk.yellow('-') : chalk.red('✗'),
    r.check,
    r.target,
    r.outcome,
    `${r.seconds.toFixed(1)}s`,
    r.problems.join('; '),
  ]);
  const ESC = String.fromCharCode(27);
  const plain = (s) =>
    String(s)
      .split(ESC)
      .map((part, i) => (i === 0 ? part : part.replace(/^\[[0-9;]*m/, '')))
      .join('');
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => plain(r[i]).length)));
  const fmt = (r) =>
    r
      .map((c, i) => String(c) + ' '.repeat(widths[i] - plain(c).length))
      .join('  ')
      .trimEnd();
  console.log(`\n${fmt(headers)}\n${fmt(widths.map((w) => '-'.repeat(w)))}\n${cells.map(fmt).join('\n')}\n`);
}

/** Runs the deployment smoke test; returns the process exit code. */
export async function smokeDeployment(argv) {
  const started = Date.now();
  try {
    const targets = await targetsOf(argv);
    const airflow = await airflowClient(argv);
    const client = new ApiClient(targets.executorUrl, argv.token ?? process.env.AIRFLEET_TOKEN);
    const timeoutMs = Number(argv.timeout ?? 600) * 1000;
    console.log(
      `smoke: Airflow ${argv['airflow-url'] ?? process.env.AIRFLEET_AIRFLOW_URL}, executor ${targets.executorUrl}`,
    );
    const rows = await Promise.all([
      smokeDag(airflow, timeoutMs).catch((e) => ({
        check: `DAG ${SMOKE_DAG}`,
        target: '',
        outcome: 'error',
        seconds: 0,
        problems: [e.message],
      })),
      ...targets.backends.map((t) =>
        directWorkload(client, t, argv.image, timeoutMs).catch((e) => ({
          check: `workload on ${t.backend}`,
          target: `queue ${t.queue}`,
          outcome: 'error',
          seconds: 0,
          problems: [e.message],
        })),
      ),
    ]);
    printTable(rows);
    const failed = rows.filter((r) => r.problems.length && r.outcome !== 'skipped');
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    console.log(
      failed.length
        ? chalk.red(`smoke: ${failed.length} of ${rows.length} checks failed (${secs}s)`)
        : chalk.green(`smoke: all checks passed in ${secs}s`),
    );
    return failed.length ? 1 : 0;
  } catch (error) {
    console.error(chalk.red(`smoke: ${error.message}`));
    return error instanceof UsageError ? 2 : 1;
  }
}
