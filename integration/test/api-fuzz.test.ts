import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN, ServiceProcess } from '../src/airfleet-process.ts';
import { type StartedPostgres, startPostgres } from '../src/postgres.ts';

/**
 * The fuzz stage: schemathesis (pinned in integration/python/requirements.txt) generates requests from the
 * running service's own /openapi.json, valid and invalid, and checks every answer: no 5xx, a documented
 * status, the documented content type and headers, a body that matches the documented schema. Once with an
 * admin token over the whole API and once with a registered worker's token over the worker protocol; on
 * embedded PGlite and, shorter, on PostgreSQL. integration/fuzz/hooks.py says what the hooks adjust.
 *
 * Bounded: AIRFLEET_FUZZ_SECONDS (default 45) for the admin run on PGlite, half that for its worker run and
 * for the admin run on PostgreSQL, a quarter for the worker run on PostgreSQL: about 3 minutes in all.
 */
const ST = join(__dirname, '../.venv/bin/st');
const HOOKS = join(__dirname, '../fuzz');
const SECONDS = Number(process.env.AIRFLEET_FUZZ_SECONDS ?? 45);
const ADMIN_TOKEN_ID = ADMIN_TOKEN.split('_')[1]!;
const CHECKS = [
  'not_a_server_error',
  'status_code_conformance',
  'content_type_conformance',
  'response_headers_conformance',
  'response_schema_conformance',
].join(',');
const WORKER = { name: 'fuzz-worker', queues: ['fuzz'], concurrency: 8, runtime: 'process', version: 'fuzz' };

interface FuzzResult {
  label: string;
  exitCode: number | null;
  seconds: number;
  requests: number;
  /** Requests per answered status; 0 is a request that got no answer (timeout, reset). */
  statuses: Record<number, number>;
  /** Per operation (`POST /v1/worker/poll`), how many got a 2xx. */
  succeededBy: Record<string, number>;
  /** The failures schemathesis reports (unique, after shrinking), from its summary. */
  failures: number;
  output: string;
}

interface HarEntry {
  request: { method: string; url: string };
  response: { status: number };
}

function runSchemathesis(
  label: string,
  schema: string,
  baseUrl: string,
  seconds: number,
  args: string[],
  env: Record<string, string>,
): Promise<FuzzResult> {
  const reportDir = mkdtempSync(join(tmpdir(), 'airfleet-fuzz-report-'));
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(
      ST,
      [
        'run',
        schema,
        '--url',
        baseUrl,
        '--checks',
        CHECKS,
        '--max-time',
        String(seconds),
        '--request-timeout',
        '10',
        '--workers',
        '1',
        '--no-color',
        '--report',
        'har',
        '--report-dir',
        reportDir,
        ...args,
      ],
      {
        // Its caches (.schemathesis/, .hypothesis/) go to the report directory, not the repository.
        cwd: reportDir,
        env: { ...process.env, SCHEMATHESIS_HOOKS: 'hooks', PYTHONPATH: HOOKS, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('exit', (exitCode) => {
      try {
        const har = readdirSync(reportDir).find((f) => f.startsWith('har-'));
        const entries: HarEntry[] = har ? JSON.parse(readFileSync(join(reportDir, har), 'utf8')).log.entries : [];
        const statuses: Record<number, number> = {};
        const succeededBy: Record<string, number> = {};
        for (const e of entries) {
          statuses[e.response.status] = (statuses[e.response.status] ?? 0) + 1;
          if (e.response.status >= 200 && e.response.status < 300) {
            const op = `${e.request.method} ${new URL(e.request.url).pathname}`;
            succeededBy[op] = (succeededBy[op] ?? 0) + 1;
          }
        }
        const failures = Number(/(\d+) failures?\b/.exec(output.split('SUMMARY').at(-1) ?? '')?.[1] ?? 0);
        resolve({
          label,
          exitCode,
          seconds: Math.round((Date.now() - started) / 1000),
          requests: entries.length,
          statuses,
          succeededBy,
          failures,
          output,
        });
      } catch (error) {
        reject(error);
      } finally {
        rmSync(reportDir, { recursive: true, force: true });
      }
    });
  });
}

const report = (r: FuzzResult): string =>
  `schemathesis ${r.label}: ${r.requests} requests, ${r.failures} failures, ${r.statuses[500] ?? 0} answered 500, ` +
  `${r.seconds} s; statuses ${JSON.stringify(r.statuses)}`;

/**
 * What a run must show: it really ran (at least one request per second of its budget: rates seen here went
 * from 3 to 40 per second, depending on the machine's load and on how big the generated bodies were), and
 * found nothing.
 */
function expectClean(r: FuzzResult, minRequests: number): void {
  console.info(report(r));
  const serverErrors = Object.entries(r.statuses).filter(([s]) => Number(s) >= 500 || Number(s) === 0);
  if (r.exitCode !== 0 || r.failures > 0 || serverErrors.length > 0 || r.requests < minRequests) {
    throw new Error(
      `${report(r)}${r.requests < minRequests ? ` (fewer than the ${minRequests} requests a run must make)` : ''}\n\n${r.output.slice(-20_000)}`,
    );
  }
}

/** One service under fuzz: its schema saved to a file (it needs a token), a worker registered, work queued. */
async function prepare(service: ServiceProcess, dir: string): Promise<{ schema: string; workerToken: string }> {
  const doc = await service.client.request<unknown>('GET', '/openapi.json');
  const schema = join(dir, 'openapi.json');
  writeFileSync(schema, JSON.stringify(doc));
  const { token } = await service.client.request<{ token: string }>('POST', '/v1/worker/register', { body: WORKER });
  for (let i = 0; i < 6; i++) {
    await service.client.request('POST', '/v1/workloads', {
      body: { key: `fuzz-seed-${i}`, command: ['true'], queue: 'fuzz' },
    });
  }
  return { schema, workerToken: token };
}

function fuzzService(store: string, open: () => Promise<ServiceProcess>, seconds: { admin: number; worker: number }) {
  describe(`API fuzz on ${store} (schemathesis from /openapi.json)`, () => {
    let service: ServiceProcess;
    let dir: string;
    let schema: string;
    let workerToken: string;

    beforeAll(async () => {
      if (!existsSync(ST)) {
        throw new Error(`no schemathesis at ${ST}: run \`bash scripts/setup-python.sh\` (.ci/run does)`);
      }
      dir = mkdtempSync(join(tmpdir(), 'airfleet-fuzz-'));
      service = await open();
      ({ schema, workerToken } = await prepare(service, dir));
    }, 240_000);
    afterAll(async () => {
      await service?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it(
      'the worker protocol, with a worker token: no 5xx, every answer as documented',
      async () => {
        const result = await runSchemathesis(
          `${store}, worker token, worker protocol`,
          schema,
          service.url,
          seconds.worker,
          ['--include-path-regex', '^/v1/worker/(?!register)'],
          {
            AIRFLEET_FUZZ_TOKEN: workerToken,
            AIRFLEET_FUZZ_API_URL: service.url,
            AIRFLEET_FUZZ_ENROLL_TOKEN: ADMIN_TOKEN,
            AIRFLEET_FUZZ_WORKER: JSON.stringify(WORKER),
          },
        );
        expectClean(result, seconds.worker);
        // The token worked: the worker's own operations answered 2xx, not only 401/403.
        expect(result.succeededBy['POST /v1/worker/heartbeat'] ?? 0).toBeGreaterThan(0);
        expect(result.succeededBy['POST /v1/worker/poll'] ?? 0).toBeGreaterThan(0);
      },
      (seconds.worker + 120) * 1000,
    );

    it(
      'the whole API, with an admin token: no 5xx, every answer as documented',
      async () => {
        const result = await runSchemathesis(
          `${store}, admin token, all operations`,
          schema,
          service.url,
          seconds.admin,
          // The worker protocol answers only worker tokens (403 here); registration takes an admin token.
          ['--exclude-path-regex', '^/v1/worker/(?!register)'],
          { AIRFLEET_FUZZ_TOKEN: ADMIN_TOKEN, AIRFLEET_FUZZ_PROTECTED_TOKEN: ADMIN_TOKEN_ID },
        );
        expectClean(result, seconds.admin);
        // It reached the logic behind the checks: submissions were stored and listed.
        const submitted =
          (result.succeededBy['POST /v1/workloads'] ?? 0) + (result.succeededBy['POST /v1/workloads/batch'] ?? 0);
        expect(submitted).toBeGreaterThan(0);
        expect(result.succeededBy['GET /v1/workloads'] ?? 0).toBeGreaterThan(0);
      },
      (seconds.admin + 120) * 1000,
    );
  });
}

// A worker is never written off for silence here: heartbeats come only when the fuzzer sends one.
const serviceOptions = { heartbeatIntervalMs: 10_000, heartbeatTimeoutMs: 3_600_000 };

fuzzService('embedded PGlite', () => ServiceProcess.start(serviceOptions), {
  admin: SECONDS,
  worker: Math.round(SECONDS / 2),
});

let postgres: StartedPostgres | undefined;
afterAll(async () => {
  await postgres?.stop();
});
fuzzService(
  'PostgreSQL',
  async () => {
    postgres = await startPostgres();
    return ServiceProcess.start({ ...serviceOptions, databaseUrl: postgres.url });
  },
  { admin: Math.round(SECONDS / 2), worker: Math.round(SECONDS / 4) },
);
