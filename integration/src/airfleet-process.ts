import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient, type ClientTls } from '../../executor/src/client/api-client.ts';
import { freePort } from './ports.ts';

// jest runs this file as CommonJS (so __dirname, not import.meta); scripts (ESM: npm run demo) run from the root.
const CLI =
  typeof __dirname === 'string' && __dirname.endsWith('integration/src')
    ? join(__dirname, '../../executor/bin/airfleet.mjs')
    : join(process.cwd(), 'executor/bin/airfleet.mjs');

/** One `airfleet` process (service or worker) with its output kept for failure messages. */
export class AirfleetProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly output: string[] = [];
  readonly exited: Promise<number | null>;

  constructor(name: string, args: string[], env: Record<string, string>) {
    this.name = name;
    this.child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, NODE_OPTIONS: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (d: Buffer) => {
      this.output.push(d.toString());
      if (this.output.length > 500) this.output.shift();
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.exited = once(this.child, 'exit').then(([code]) => code as number | null);
  }

  tail(lines = 30): string {
    return this.output.join('').split('\n').slice(-lines).join('\n');
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

export const ADMIN_TOKEN = 'aft_integrationadm01_integration-admin-secret-0123456789';

export interface ServiceOptions {
  /** PostgreSQL URL; without one the service uses embedded PGlite in a temporary directory. */
  databaseUrl?: string;
  port?: number;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  /** AIRFLEET_BACKENDS, e.g. `pool,local`. */
  backends?: string;
  /** More environment for the service (instance name and timeouts, secret key, a backend's settings, PATH and
   * HOME for what the `local` backend runs...). */
  env?: Record<string, string>;
  /**
   * The service serves HTTPS (its AIRFLEET_TLS_* settings go in `env`): the harness talks to it with this CA
   * and, where the service asks for one, this client certificate.
   */
  tls?: ClientTls & { caFile: string };
}

/** The executor service as a real process on a loopback port, restartable on the same port. */
export class ServiceProcess {
  readonly url: string;
  readonly port: number;
  readonly client: ApiClient;
  process: AirfleetProcess | null = null;
  private readonly options: ServiceOptions;
  private readonly dataDir = mkdtempSync(join(tmpdir(), 'airfleet-service-'));

  private constructor(options: ServiceOptions, port: number) {
    this.options = options;
    this.port = port;
    this.url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    this.client = new ApiClient(this.url, ADMIN_TOKEN, options.tls);
  }

  static async start(options: ServiceOptions): Promise<ServiceProcess> {
    const service = new ServiceProcess(options, options.port ?? (await freePort()));
    await service.restart();
    return service;
  }

  env(): Record<string, string> {
    return {
      ...(this.options.databaseUrl ? { AIRFLEET_DATABASE_URL: this.options.databaseUrl } : {}),
      AIRFLEET_ADMIN_TOKEN: ADMIN_TOKEN,
      AIRFLEET_HEARTBEAT_INTERVAL_MS: String(this.options.heartbeatIntervalMs ?? 300),
      AIRFLEET_HEARTBEAT_TIMEOUT_MS: String(this.options.heartbeatTimeoutMs ?? 2_000),
      AIRFLEET_LEASE_ACK_TIMEOUT_MS: '3000',
      AIRFLEET_REAPER_INTERVAL_MS: '100',
      AIRFLEET_LOG_LEVEL: 'info',
      ...(this.options.backends ? { AIRFLEET_BACKENDS: this.options.backends } : {}),
      ...this.options.env,
    };
  }

  /** (Re)starts the service process and waits until /readyz answers. */
  async restart(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.process?.kill(signal);
    this.process = new AirfleetProcess('service', ['serve', '--port', String(this.port)], {
      ...this.env(),
      AIRFLEET_DATA_DIR: this.dataDir,
    });
    await waitFor(
      `the service on ${this.url}`,
      // Through the harness's own client: over HTTPS it trusts the test CA (options.tls).
      async () =>
        (await this.client.request<{ status: string }>('GET', '/readyz', { timeoutMs: 5_000 })).status === 'ready',
      // A fresh embedded database (PGlite initdb, migrations, key file) took over 30 s on a 2-core machine
      // under a load of 5; the deadline is for a service that never comes up, not a slow one.
      90_000,
      () => this.process!.tail(),
    );
  }

  /**
   * Starts a pull worker process against this service. Its state directory (identity, spool) is kept per
   * name for the life of this service object, so a worker started again under the same name finds its
   * predecessor's, as it would on the same machine. `env`: more environment (e.g. PATH and HOME for tasks).
   */
  worker(name: string, args: string[], env: Record<string, string> = {}): AirfleetProcess {
    return new AirfleetProcess(`worker ${name}`, ['worker', '--name', name, ...args], {
      AIRFLEET_API_URL: this.url,
      AIRFLEET_TOKEN: ADMIN_TOKEN,
      AIRFLEET_LOG_LEVEL: 'info',
      AIRFLEET_WORKER_STATE_DIR: join(this.dataDir, 'workers', name),
      ...env,
    });
  }

  async stop(): Promise<void> {
    await this.process?.kill('SIGTERM');
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  timeoutMs = 30_000,
  context?: () => string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}${
          context ? `\n${context()}` : ''
        }`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
