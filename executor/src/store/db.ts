/**
 * The one seam between the service and its database: PostgreSQL through `pg`, or an embedded PGlite on disk
 * when no database URL is configured. Everything above this module writes plain SQL against one interface,
 * so the same suites run against both (pg-boss does the same).
 */
export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<{ rows: T[] }>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `fn` in one transaction; rolls back when it throws. */
  tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  /**
   * Tries to take a session-level advisory lock on a connection of its own (leader election): null when
   * someone else holds it. The lock is held until released or until its connection dies.
   */
  tryLock(key: number): Promise<HeldLock | null>;
  /** Subscribes to NOTIFY on `channel`; survives reconnects. Returns an unsubscribe function. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface HeldLock {
  /** Checks that the lock's connection still answers; false means the lock is gone (and released). */
  check(): Promise<boolean>;
  release(): Promise<void>;
}

/** The database is unreachable (restarting, network): callers answer 503 and clients retry. */
export class DatabaseUnavailableError extends Error {
  override name = 'DatabaseUnavailableError';
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  '57P01',
  '57P02',
  '57P03',
  '08006',
  '08001',
  '08003',
]);

/** True for errors that mean "could not talk to the database", as opposed to a bad statement. */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: string }).code;
  if (code && CONNECTION_CODES.has(code)) return true;
  return /Connection terminated|connection is insecure|Client has encountered a connection error|the database system is (starting up|shutting down)|timeout exceeded when trying to connect/i.test(
    error.message,
  );
}
