import pino from 'pino';
import { parseServiceConfig, type ServiceConfigInput } from '../../src/config.ts';
import { ExecutorService } from '../../src/service/executor-service.ts';

/**
 * A service on a fresh database: embedded PGlite in memory by default, or the PostgreSQL server named by
 * AIRFLEET_TEST_DATABASE_URL (a new schema-free database per call is the caller's business), so the same
 * suite runs against both stores.
 */
export async function openTestService(overrides: ServiceConfigInput = {}): Promise<ExecutorService> {
  const config = parseServiceConfig({
    dataDir: 'memory://',
    reaperIntervalMs: 50,
    logLevel: 'silent',
    ...(process.env.AIRFLEET_TEST_DATABASE_URL ? { databaseUrl: process.env.AIRFLEET_TEST_DATABASE_URL } : {}),
    bootstrapTokens: [{ name: 'test-admin', token: TEST_ADMIN_TOKEN, scopes: ['admin'] }],
    ...overrides,
  });
  return ExecutorService.open(config, pino({ level: 'silent' }));
}

/** Polls `check` until it holds; fails naming the timeout, so a slow machine shows as slow, not as wrong. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Polls `read` until it returns something truthy, and returns that. */
export async function waitFor<T>(read: () => Promise<T | null | false | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export type OpenService = (overrides?: ServiceConfigInput) => Promise<ExecutorService>;

export const TEST_ADMIN_TOKEN = 'aft_testadmin0001_testsecret-testsecret-testsecret';
