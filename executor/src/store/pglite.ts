import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import type { Db, HeldLock, Queryable } from './db.ts';

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
    if (!dataDir.startsWith('memory://')) mkdirSync(dataDir, { recursive: true });
    const pg = await PGlite.create(dataDir);
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
