import { chmodSync } from 'node:fs';
import pg from 'pg';
import { GenericContainer, type StartedTestContainer, Wait } from 'testcontainers';
import { configureTestcontainers, projectImage, testLabels } from './docker-env.ts';
import { freePort } from './ports.ts';

export interface PostgresOptions {
  /** @default 'airfleet' */
  database?: string;
  /** Extra `-c name=value` server settings. @default fsync off, which is safe for throwaway test data */
  settings?: Record<string, string>;
  /**
   * TLS: a directory with server.pem and server-key.pem (scripts/dev-certs.mjs), mounted read-only; the
   * server then also accepts TLS connections (ssl=on) with that certificate.
   */
  tlsDir?: string;
  /**
   * A host directory to mount as the server's socket directory (/var/run/postgresql), so clients on this host
   * can connect over its Unix socket (`socketUrl`) as well as TCP: a same-host deployment's cheaper path.
   * It is made writable by all (the server runs as its own user), so it must sit inside a directory only the
   * caller can enter (a mkdtemp directory).
   */
  socketDir?: string;
}

/** A PostgreSQL server in a container from `images/postgres`, listening on a free loopback port. */
export class StartedPostgres {
  readonly container: StartedTestContainer;
  readonly port: number;
  readonly password: string;
  readonly database: string;
  readonly socketDir: string | undefined;

  constructor(container: StartedTestContainer, port: number, password: string, database: string, socketDir?: string) {
    this.container = container;
    this.port = port;
    this.password = password;
    this.database = database;
    this.socketDir = socketDir;
  }

  get url(): string {
    return `postgres://postgres:${encodeURIComponent(this.password)}@127.0.0.1:${this.port}/${this.database}`;
  }

  /** The URL over the Unix socket in `socketDir` (libpq's `host=<directory>` form); the TCP URL without one. */
  get socketUrl(): string {
    if (!this.socketDir) return this.url;
    const query = new URLSearchParams({ host: this.socketDir, port: String(this.port) });
    return `postgres://postgres:${encodeURIComponent(this.password)}@localhost/${this.database}?${query}`;
  }

  /** A new empty database on this server, for one suite; returns its URL. */
  async createDatabase(name: string): Promise<string> {
    const admin = new pg.Client({ connectionString: this.url });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
    } finally {
      await admin.end();
    }
    return this.url.replace(/\/[^/]+$/, `/${name}`);
  }

  /** Restarts the server process (the container), keeping its data: for tests of reconnect behaviour. */
  async restart(): Promise<void> {
    await this.container.restart();
    await waitForPostgres(this.container, this.port);
  }

  async stop(): Promise<void> {
    await this.container.stop({ remove: true, timeout: 2_000 });
  }
}

async function waitForPostgres(container: StartedTestContainer, port: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const { exitCode } = await container.exec(['pg_isready', '-q', '-h', '127.0.0.1', '-p', String(port)]);
    if (exitCode === 0) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`PostgreSQL on 127.0.0.1:${port} did not become ready within 30 s`);
}

export async function startPostgres(options: PostgresOptions = {}): Promise<StartedPostgres> {
  configureTestcontainers();
  const port = await freePort();
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const database = options.database ?? 'airfleet';
  // fsync off is safe here: it only matters if the machine itself crashes, never for a killed server.
  const settings = { fsync: 'off', ...options.settings };
  const tls = options.tlsDir
    ? { ssl: 'on', ssl_cert_file: '/run/postgresql/tls/server.pem', ssl_key_file: '/run/postgresql/tls/server-key.pem' }
    : {};
  const args = Object.entries({ ...settings, ...tls }).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  let image = new GenericContainer(projectImage('postgres'));
  // One list: withBindMounts replaces the mounts it was given before.
  const mounts: Array<{ source: string; target: string; mode: 'ro' | 'rw' }> = [];
  if (options.tlsDir) {
    // PostgreSQL reads a key only if the server's user owns it and no one else may: copy the mounted pair
    // to where the entrypoint (images/postgres/entrypoint.sh) runs the server from, owned by postgres.
    mounts.push({ source: options.tlsDir, target: '/tls', mode: 'ro' });
    image = image.withEntrypoint([
      '/usr/bin/tini',
      '--',
      'sh',
      '-c',
      'install -d -o postgres -m 0700 /run/postgresql/tls && install -o postgres -m 0600 /tls/server.pem /tls/server-key.pem /run/postgresql/tls/ && exec /usr/local/bin/airfleet-postgres "$@"',
      'airfleet-postgres',
    ]);
  }
  if (options.socketDir) {
    // The server (its own user in the container) creates its socket there; the caller's private parent
    // directory keeps everyone else on the host out (see PostgresOptions.socketDir).
    chmodSync(options.socketDir, 0o777);
    mounts.push({ source: options.socketDir, target: '/var/run/postgresql', mode: 'rw' });
  }
  if (mounts.length > 0) image = image.withBindMounts(mounts);
  const container = await image
    .withNetworkMode('host')
    .withLabels(testLabels())
    .withEnvironment({ POSTGRES_PASSWORD: password, POSTGRES_DB: database, PGPORT: String(port) })
    .withCommand(args)
    .withHealthCheck({
      test: ['CMD', 'pg_isready', '-q', '-h', '127.0.0.1', '-p', String(port)],
      interval: 500,
      timeout: 2_000,
      retries: 60,
    })
    .withWaitStrategy(Wait.forHealthCheck())
    .withStartupTimeout(60_000)
    .start();
  return new StartedPostgres(container, port, password, database, options.socketDir);
}
