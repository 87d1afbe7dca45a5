import { execFile } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import type { Db, HeldLock, Queryable } from './db.ts';

/** Shared buffers of the embedded database, in MB (PostgreSQL's default is 128). */
export const PGLITE_SHARED_BUFFERS_MB = 16;
const PGLITE_OPTIONS = { postgresqlconf: [`shared_buffers=${PGLITE_SHARED_BUFFERS_MB}MB`] };

/**
 * Creates a new data directory (initdb) in a short-lived Node process: initdb's WebAssembly memory is never
 * given back to the OS, and done in the service's own process it kept a first start ~400 MB larger than
 * every later one. The child exits once the directory is made; the service then opens it as on a restart.
 */
async function initInChild(dataDir: string): Promise<void> {
  // jest runs the sources as CommonJS (require); Node runs them, or dist, as ES modules.
  const entry =
    typeof require === 'function'
      ? pathToFileURL(require.resolve('@electric-sql/pglite')).href
      : import.meta.resolve('@electric-sql/pglite');
  const script = `const { PGlite } = await import(process.argv[1]);
const pg = await PGlite.create(process.argv[2], JSON.parse(process.argv[3]));
await pg.close();`;
  try {
    await promisify(execFile)(
      process.execPath,
      ['--input-type=module', '-e', script, entry, dataDir, JSON.stringify(PGLITE_OPTIONS)],
      { timeout: 120_000 },
    );
  } catch (error) {
    const e = error as Error & { stderr?: string };
    throw new Error(
      `could not create the embedded database in ${dataDir}: ${(e.stderr || e.message).trim().slice(-2000)} ` +
        '(check that the directory is writable and the disk has room, or set --database-url to use PostgreSQL)',
    );
  }
}

/**
 * The embedded default: PGlite (PostgreSQL compiled to WebAssembly) with its data directory on disk, so a
 * restart of `airfleet serve` loses nothing. It is one connection: statements and transactions run one at
 * a time, which is ample for a laptop or a small fleet. `dataDir` of `memory://` keeps it in memory (tests).
 */
export class PgliteDb implements Db {
  readonly kind = 'pglite' as const;
  private readonly pg: PGlite;
  /** One process, one connection: advisory locks are kept here (several services may share this object in tests). */
  private readonly locks = new Set<number>();

  private constructor(pg: PGlite) {
    this.pg = pg;
  }

  static async open(dataDir: string): Promise<PgliteDb> {
    if (!dataDir.startsWith('memory://')) {
      mkdirSync(dataDir, { recursive: true });
      if (!existsSync(join(dataDir, 'PG_VERSION'))) await initInChild(dataDir);
    }
    // PostgreSQL's default 128 MB of shared buffers live in the WebAssembly heap, which never shrinks: an idle
    // service grew to ~330 MB. 16 MB holds a small fleet's hot tables and indexes; the data files go
    // through the OS page cache as well (README.md, "Benchmark").
    const pg = await PGlite.create(dataDir, PGLITE_OPTIONS);
    return new PgliteDb(pg);
  }

  async query<T>(sql: string, params?: readonly unknown[]): Promise<{ rows: T[] }> {
    try {
      const result = await this.pg.query<T>(sql, params as unknown[]);
      return { rows: result.rows };
    } catch (error) {
      throw withoutValues(error);
    }
  }

  async exec(sql: string): Promise<void> {
    await this.pg.exec(sql);
  }

  async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    return this.pg.transaction(async (tx) =>
      fn({
        query: async <R>(sql: string, params?: readonly unknown[]) => {
          try {
            const result = await tx.query<R>(sql, params as unknown[]);
            return { rows: result.rows };
          } catch (error) {
            throw withoutValues(error);
          }
        },
        exec: async (sql: string) => {
          await tx.exec(sql);
        },
      }),
    );
  }

  async tryLock(key: number): Promise<HeldLock | null> {
    if (this.locks.has(key)) return null;
    this.locks.add(key);
    let held = true;
    return {
      check: async () => held,
      release: async () => {
        held = false;
        this.locks.delete(key);
      },
    };
  }

  async listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>> {
    const unsubscribe = await this.pg.listen(channel, onPayload);
    return unsubscribe;
  }

  async close(): Promise<void> {
    await this.pg.close();
  }
}

/**
 * PGlite's errors carry the statement's bound values (`params`): a failed INSERT would take a workload's
 * env and secrets into whatever logs the error. They are dropped here, at the source.
 */
function withoutValues(error: unknown): unknown {
  if (error && typeof error === 'object') {
    for (const field of ['params', 'queryOptions', 'detail', 'where']) delete (error as Record<string, unknown>)[field];
  }
  return error;
}
