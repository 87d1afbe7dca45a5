import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from './airfleet-process.ts';
import { freePort } from './ports.ts';

const run = promisify(execFile);

/** The repository root: jest runs this file as CommonJS (__dirname); scripts (ESM) run from the root. */
export const REPO =
  typeof __dirname === 'string' && __dirname.endsWith('integration/src') ? resolve(__dirname, '../..') : process.cwd();
export const AIRFLOW_VENV = process.env.AIRFLEET_AIRFLOW_VENV ?? join(REPO, 'executor/airflow/.venv');
export const EXAMPLE_DAGS = join(REPO, 'executor/airflow/examples');

/** Fails with the fix when the Airflow venv (scripts/setup-airflow.sh) is missing. */
export function assertAirflowVenv(): void {
  if (!existsSync(join(AIRFLOW_VENV, 'bin/airflow'))) {
    throw new Error(`No Airflow venv at ${AIRFLOW_VENV}: run \`bash scripts/setup-airflow.sh\` (.ci/run does).`);
  }
}

/** Config sections merged key by key into airflow.cfg (a second `[section]` header would break Airflow). */
export type AirflowConfig = Record<string, Record<string, string | number | boolean>>;

function renderConfig(config: AirflowConfig): string {
  return Object.entries(config)
    .map(
      ([section, keys]) =>
        `[${section}]\n${Object.entries(keys)
          .map(([k, v]) => `${k} = ${v}`)
          .join('\n')}\n`,
    )
    .join('\n');
}

function merge(base: AirflowConfig, extra: AirflowConfig): AirflowConfig {
  const out: AirflowConfig = { ...base };
  for (const [section, keys] of Object.entries(extra)) out[section] = { ...out[section], ...keys };
  return out;
}

/** One Airflow component (`airflow api-server` ...) with its output in a file and the last lines kept. */
export class AirflowProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  private readonly lines: string[] = [];

  constructor(name: string, args: string[], env: NodeJS.ProcessEnv, logFile: string) {
    this.name = name;
    this.child = spawn(join(AIRFLOW_VENV, 'bin/airflow'), args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const file = createWriteStream(logFile, { flags: 'a' });
    const keep = (d: Buffer) => {
      file.write(d);
      this.lines.push(d.toString());
      if (this.lines.length > 300) this.lines.shift();
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = once(this.child, 'exit').then(([code]) => {
      file.end();
      return code as number | null;
    });
  }

  tail(lines = 40): string {
    return `--- ${this.name} ---\n${this.lines.join('').split('\n').slice(-lines).join('\n')}`;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 20_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

export interface AirflowOptions {
  /** SQLAlchemy URL of an empty database, e.g. postgresql+psycopg2://user:pw@127.0.0.1:5432/airflow */
  databaseUrl: string;
  dagsFolder: string;
  /** The `[airfleet]` section (url, token_file...). */
  airfleet: Record<string, string | number>;
  /** More config, merged key by key. */
  config?: AirflowConfig;
}

export interface TaskInstance {
  task_id: string;
  map_index: number;
  state: string | null;
  try_number: number;
  executor: string | null;
  queue: string;
  pool_slots: number;
  hostname: string | null;
  [key: string]: unknown;
}

export interface LogLine {
  event: string;
  timestamp?: string;
  level?: string;
  logger?: string;
  [key: string]: unknown;
}

/**
 * A real Airflow 3 on loopback from the venv of scripts/setup-airflow.sh: api-server, scheduler (with
 * --skip-serve-logs: its log server would bind every interface), dag-processor and triggerer (deferred
 * tasks, such as AirfleetOperator's, wait there; --skip-serve-logs too), on one database.
 * The simple auth manager with one admin user; REST calls go through `request` with a bearer token.
 */
export class AirflowDeployment {
  readonly home: string;
  readonly apiUrl: string;
  readonly password = `pw-${randomBytes(8).toString('hex')}`;
  apiServer!: AirflowProcess;
  scheduler!: AirflowProcess;
  dagProcessor!: AirflowProcess;
  triggerer!: AirflowProcess;
  private schedulers = 0;
  private token: string | null = null;
  private readonly env: NodeJS.ProcessEnv;

  private constructor(home: string, port: number) {
    this.home = home;
    this.apiUrl = `http://127.0.0.1:${port}`;
    this.env = {
      PATH: `${join(AIRFLOW_VENV, 'bin')}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      HOME: home,
      AIRFLOW_HOME: home,
      LANG: 'C.UTF-8',
      PYTHONUNBUFFERED: '1',
    };
  }

  static async start(options: AirflowOptions): Promise<AirflowDeployment> {
    assertAirflowVenv();
    const port = await freePort();
    const airflow = new AirflowDeployment(mkdtempSync(join(tmpdir(), 'airfleet-airflow-')), port);
    await airflow.configure(options, port);
    await airflow.migrate();
    airflow.apiServer = airflow.component('api-server', ['api-server', '--host', '127.0.0.1', '--port', String(port)]);
    airflow.startScheduler();
    airflow.dagProcessor = airflow.component('dag-processor', ['dag-processor']);
    airflow.triggerer = airflow.component('triggerer', ['triggerer', '--skip-serve-logs']);
    await waitFor(
      `the Airflow api-server on ${airflow.apiUrl}`,
      async () => (await fetch(`${airflow.apiUrl}/api/v2/monitor/health`)).ok,
      180_000,
      () => airflow.tails(),
    );
    await airflow.waitForScheduler();
    return airflow;
  }

  private async configure(options: AirflowOptions, port: number): Promise<void> {
    const passwords = join(this.home, 'passwords.json');
    writeFileSync(passwords, JSON.stringify({ admin: this.password }), { mode: 0o600 });
    mkdirSync(join(this.home, 'logs'));
    const base: AirflowConfig = {
      core: {
        dags_folder: options.dagsFolder,
        executor: 'LocalExecutor,airfleet_airflow.executor.AirfleetExecutor',
        load_examples: 'False',
        dags_are_paused_at_creation: 'False',
        parallelism: 64,
        execution_api_server_url: `http://127.0.0.1:${port}/execution/`,
        simple_auth_manager_users: 'admin:admin',
        simple_auth_manager_passwords_file: passwords,
        fernet_key: `${randomBytes(32).toString('base64url')}=`,
      },
      database: { sql_alchemy_conn: options.databaseUrl },
      api: { host: '127.0.0.1', port, base_url: this.apiUrl, workers: 1, secret_key: randomBytes(32).toString('hex') },
      api_auth: { jwt_secret: randomBytes(64).toString('hex') },
      logging: {
        base_log_folder: join(this.home, 'logs'),
        worker_log_server_port: await freePort(),
        logging_config_class: 'airfleet_airflow.log_config.LOGGING_CONFIG',
      },
      dag_processor: { refresh_interval: 5 },
      airfleet: options.airfleet,
    };
    writeFileSync(join(this.home, 'airflow.cfg'), renderConfig(merge(base, options.config ?? {})), { mode: 0o600 });
  }

  private async migrate(): Promise<void> {
    try {
      await run(join(AIRFLOW_VENV, 'bin/airflow'), ['db', 'migrate'], { env: this.env, maxBuffer: 64 << 20 });
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; message: string };
      throw new Error(`airflow db migrate failed: ${e.message}\n${(e.stderr ?? '').slice(-3000)}`);
    }
  }

  private component(name: string, args: string[]): AirflowProcess {
    return new AirflowProcess(name, args, this.env, join(this.home, `${name}.log`));
  }

  private startScheduler(): void {
    this.schedulers++;
    this.scheduler = this.component(`scheduler-${this.schedulers}`, ['scheduler', '--skip-serve-logs']);
  }

  private async waitForScheduler(): Promise<void> {
    await waitFor(
      'a healthy Airflow scheduler',
      async () => {
        const health = (await (await fetch(`${this.apiUrl}/api/v2/monitor/health`)).json()) as {
          scheduler?: { status?: string };
        };
        return health.scheduler?.status === 'healthy';
      },
      120_000,
      () => this.tails(),
    );
  }

  /** Stops the scheduler (SIGTERM, as a deploy or an orchestrator would) and starts a new one. */
  async restartScheduler(): Promise<void> {
    await this.scheduler.stop('SIGTERM');
    this.startScheduler();
    await this.waitForScheduler();
  }

  /** Lines of the components' logs (every run of each, restarts included) that match `pattern`. */
  grep(pattern: RegExp, limit = 80): string[] {
    const found: string[] = [];
    for (const name of ['api-server', 'scheduler', 'dag-processor', 'triggerer']) {
      const file = join(this.home, `${name}.log`);
      if (!existsSync(file)) continue;
      for (const line of readFileSync(file, 'utf8').split('\n')) if (pattern.test(line)) found.push(`${name}: ${line}`);
    }
    return found.slice(-limit);
  }

  tails(): string {
    return [this.apiServer, this.scheduler, this.dagProcessor, this.triggerer]
      .filter(Boolean)
      .map((p) => p.tail())
      .join('\n');
  }

  /** A REST call to /api/v2 (or /auth) with the admin's bearer token; throws with the body on an error. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      this.token ??= await this.login();
      const response = await fetch(`${this.apiUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      if (response.status === 401 && attempt === 0) {
        this.token = null;
        continue;
      }
      const text = await response.text();
      if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${text.slice(0, 2000)}`);
      return JSON.parse(text) as T;
    }
  }

  /** The admin's bearer token (a JWT), e.g. for a browser session's `_token` cookie. */
  async accessToken(): Promise<string> {
    this.token ??= await this.login();
    return this.token;
  }

  private async login(): Promise<string> {
    const response = await fetch(`${this.apiUrl}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: this.password }),
    });
    if (!response.ok) throw new Error(`POST /auth/token: HTTP ${response.status} ${await response.text()}`);
    return ((await response.json()) as { access_token: string }).access_token;
  }

  /** Waits until the dag-processor has parsed these DAGs and the api-server lists them. */
  async waitForDags(dagIds: string[], timeoutMs = 180_000): Promise<void> {
    await waitFor(
      `DAGs ${dagIds.join(', ')}`,
      async () => {
        const { dags } = await this.request<{ dags: Array<{ dag_id: string }> }>('GET', '/api/v2/dags?limit=100');
        const known = new Set(dags.map((d) => d.dag_id));
        return dagIds.every((id) => known.has(id));
      },
      timeoutMs,
      () => this.tails(),
    );
  }

  async trigger(dagId: string, conf: Record<string, unknown> = {}): Promise<string> {
    const run = await this.request<{ dag_run_id: string }>('POST', `/api/v2/dags/${dagId}/dagRuns`, {
      logical_date: null,
      conf,
    });
    return run.dag_run_id;
  }

  async runState(dagId: string, runId: string): Promise<string> {
    const run = await this.request<{ state: string }>(
      'GET',
      `/api/v2/dags/${dagId}/dagRuns/${encodeURIComponent(runId)}`,
    );
    return run.state;
  }

  async waitForRun(dagId: string, runId: string, timeoutMs: number): Promise<string> {
    return waitFor(
      `DAG run ${dagId} ${runId} to finish`,
      async () => {
        const state = await this.runState(dagId, runId);
        return state === 'success' || state === 'failed' ? state : null;
      },
      timeoutMs,
      () => this.tails(),
    );
  }

  /** Every task instance of a run, sorted by task id and map index (the API refuses order_by=task_id). */
  async taskInstances(dagId: string, runId: string): Promise<TaskInstance[]> {
    const { task_instances } = await this.request<{ task_instances: TaskInstance[] }>(
      'GET',
      `/api/v2/dags/${dagId}/dagRuns/${encodeURIComponent(runId)}/taskInstances?limit=100`,
    );
    return task_instances.sort((a, b) => a.task_id.localeCompare(b.task_id) || a.map_index - b.map_index);
  }

  /** One try's log as Airflow serves it (JSON: every line read so far, for a running try too). */
  async log(dagId: string, runId: string, taskId: string, tryNumber: number, mapIndex = -1): Promise<LogLine[]> {
    const result = await this.request<{ content: LogLine[] }>(
      'GET',
      `/api/v2/dags/${dagId}/dagRuns/${encodeURIComponent(runId)}/taskInstances/${taskId}/logs/${tryNumber}?map_index=${mapIndex}`,
    );
    return result.content;
  }

  async stop(): Promise<void> {
    await Promise.all(
      [this.scheduler, this.dagProcessor, this.triggerer, this.apiServer].map((p) => p?.stop('SIGTERM', 10_000)),
    );
    if (!process.env.AIRFLEET_KEEP_AIRFLOW_HOME) rmSync(this.home, { recursive: true, force: true });
  }
}
