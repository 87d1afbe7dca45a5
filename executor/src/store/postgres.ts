import { createHash } from 'node:crypto';
import pg from 'pg';
import { parseIntoClientConfig } from 'pg-connection-string';
import type { Logger } from 'pino';
import { isAuthFailure, type SecretCredentials } from './database-credentials.ts';
import { DatabaseUnavailableError, type Db, type HeldLock, isConnectionError, type Queryable } from './db.ts';

// int8 (bigint, e.g. event seq and log offsets) as numbers: they stay far below 2^53 here.
pg.types.setTypeParser(20, (v) => Number.parseInt(v, 10));

export interface PostgresDbOptions {
  url: string;
  /** @default 10 */
  poolSize?: number;
  logger: Logger;
  /** Credentials from a secret (AIRFLEET_DATABASE_SECRET_ARN), re-read when a login is refused. */
  credentials?: SecretCredentials;
  /** The credentials' username, read once at start. */
  user?: string;
}

/**
 * Statements with parameters run as named prepared statements: PostgreSQL parses and plans each one once
 * per connection instead of once per call (an unnamed statement is parsed and planned every time), which
 * was a large part of the server's CPU on the hot paths (a lease pass, a report) at hundreds of tasks a
 * second. Names come from the text, so a text always gets the same name. Only the first MAX_NAMED distinct
 * texts are named: every connection keeps every statement it prepared, and this bounds that if some
 * caller ever builds texts on the fly.
 */
const MAX_NAMED = 500;
const statementNames = new Map<string, string>();
function config(text: string, values: readonly unknown[] | undefined): pg.QueryConfig {
  if (!values || values.length === 0) return { text };
  let name = statementNames.get(text);
  if (name === undefined && statementNames.size < MAX_NAMED) {
    name = `af_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
    statementNames.set(text, name);
  }
  return name === undefined ? { text, values: values as unknown[] } : { name, text, values: values as unknown[] };
}

function wrap(error: unknown): unknown {
  return isConnectionError(error)
    ? new DatabaseUnavailableError(`PostgreSQL is unreachable: ${(error as Error).message}`)
    : error;
}

/** PostgreSQL through a `pg` pool, with a dedicated connection for LISTEN that reconnects by itself. */
export class PostgresDb implements Db {
  readonly kind = 'postgres' as const;
  private readonly pool: pg.Pool;
  private readonly listeners = new Map<string, Set<(payload: string) => void>>();
  private listenClient: pg.Client | null = null;
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private readonly options: PostgresDbOptions;

  constructor(options: PostgresDbOptions) {
    this.options = options;
    this.pool = new pg.Pool({
      ...this.connection(),
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
    });
    // An idle client that loses its server emits here; without a handler the process would crash.
    this.pool.on('error', (error) => options.logger.warn({ err: error.message }, 'idle PostgreSQL connection lost'));
  }

  /** A refused login means the secret rotated: the next connection reads it again. */
  private wrap(error: unknown): unknown {
    if (isAuthFailure(error)) this.options.credentials?.invalidate();
    return wrap(error);
  }

  /**
   * Where and how to connect: the URL alone, or, with credentials from a secret, the URL's host, port,
   * database and TLS settings with the secret's user and a password callback (pg calls it for every new
   * connection, so a rotated password is picked up without a restart).
   */
  private connection(): pg.ClientConfig {
    const { credentials, user, url } = this.options;
    if (!credentials) return { connectionString: url };
    const parsed = parseIntoClientConfig(url);
    return { ...parsed, user: user ?? parsed.user, password: () => credentials.password() };
  }

  async query<T>(sql: string, params?: readonly unknown[]): Promise<{ rows: T[] }> {
    try {
      const result = await this.pool.query(config(sql, params));
      return { rows: result.rows as T[] };
    } catch (error) {
      throw this.wrap(error);
    }
  }

  async exec(sql: string): Promise<void> {
    await this.query(sql);
  }

  async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw this.wrap(error);
    }
    // A connection that dies while checked out emits 'error' on the client; without a listener that would
    // crash the process. The failing query rejects on its own, so the listener only has to exist.
    const onError = (error: Error) =>
      this.options.logger.warn({ err: error.message }, 'PostgreSQL connection lost mid-transaction');
    client.on('error', onError);
    const q: Queryable = {
      query: async <R>(sql: string, params?: readonly unknown[]) => {
        const result = await client.query(config(sql, params));
        return { rows: result.rows as R[] };
      },
      exec: async (sql: string) => {
        await client.query(sql);
      },
    };
    let broken = false;
    try {
      await client.query('BEGIN');
      const value = await fn(q);
      await client.query('COMMIT');
      return value;
    } catch (error) {
      broken = isConnectionError(error);
      if (!broken) await client.query('ROLLBACK').catch(() => undefined);
      throw this.wrap(error);
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  async tryLock(key: number): Promise<HeldLock | null> {
    // A connection of its own: a session lock taken on a pooled connection would go back to the pool with it.
    const client = new pg.Client({
      ...this.connection(),
      connectionTimeoutMillis: 5_000,
      keepAlive: true,
    });
    let alive = true;
    client.on('error', (error) => {
      alive = false;
      this.options.logger.warn({ err: error.message }, 'leader lock connection lost');
    });
    try {
      await client.connect();
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [key]);
      if (!rows[0]?.ok) {
        await client.end().catch(() => undefined);
        return null;
      }
    } catch (error) {
      await client.end().catch(() => undefined);
      throw this.wrap(error);
    }
    return {
      check: async () => {
        if (!alive) return false;
        try {
          await client.query('SELECT 1');
          return true;
        } catch {
          alive = false;
          await client.end().catch(() => undefined);
          return false;
        }
      },
      release: async () => {
        alive = false;
        // Ending the session releases the lock.
        await client.end().catch(() => undefined);
      },
    };
  }

  async listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>> {
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      if (this.listenClient)
        await this.listenClient.query(`LISTEN ${pg.escapeIdentifier(channel)}`).catch(() => undefined);
    }
    set.add(onPayload);
    if (!this.listenClient) await this.connectListener();
    return async () => {
      set.delete(onPayload);
    };
  }

  /** Connects the LISTEN client; on failure or loss, retries every second until closed. */
  private async connectListener(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ ...this.connection(), connectionTimeoutMillis: 5_000 });
    client.on('notification', (message) => {
      for (const fn of this.listeners.get(message.channel) ?? []) fn(message.payload ?? '');
    });
    const retry = () => {
      if (this.closed || this.reconnectTimer) return;
      this.listenClient = null;
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        void this.connectListener();
      }, 1_000);
    };
    client.on('error', (error) => {
      this.options.logger.warn({ err: error.message }, 'LISTEN connection lost; reconnecting');
      client.end().catch(() => undefined);
      retry();
    });
    try {
      await client.connect();
      for (const channel of this.listeners.keys()) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      this.listenClient = client;
      // Wake everyone once after a reconnect: notifications sent while we were away are lost.
      for (const set of this.listeners.values()) for (const fn of set) fn('');
    } catch (error) {
      if (isAuthFailure(error)) this.options.credentials?.invalidate();
      this.options.logger.warn({ err: (error as Error).message }, 'LISTEN connection failed; retrying');
      client.end().catch(() => undefined);
      retry();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    await this.listenClient?.end().catch(() => undefined);
    await this.pool.end();
  }
}
