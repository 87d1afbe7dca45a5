/** Limits on what the API accepts, in one place so docs, validation and tests agree. */
export const LIMITS = {
  /** Largest request body, bytes. */
  bodyBytes: 4 * 1024 * 1024,
  /** Workloads in one batch submission. */
  batchSize: 1_000,
  keyLength: 512,
  /** Queue names, as in the Edge executor (256 characters). */
  queueLength: 256,
  commandArgs: 1_000,
  commandBytes: 256 * 1024,
  envVars: 500,
  envValueBytes: 64 * 1024,
  /** Largest log chunk a worker may upload at once, bytes. */
  logChunkBytes: 1024 * 1024,
  maxPoolSlots: 1_024,
  maxConcurrency: 1_024,
  nameLength: 128,
  commentLength: 1_024,
  labels: 64,
  /** Longest long-poll a client may ask for, ms. */
  maxWaitMs: 60_000,
  /**
   * Deepest nesting of arrays and objects a JSON body may have. Checked on the raw bytes before parsing:
   * JSON.parse, zod and the jsonb encoder all recurse, and a body of 10,000 brackets would overflow the
   * stack. The deepest legitimate body (an execConfig carrying a Nomad job template) is about 12 levels.
   */
  jsonDepth: 32,
  /** Largest value of a PostgreSQL `int` column (attempts, slots, exit codes). */
  int32: 2_147_483_647,
} as const;
