import { hostname } from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import { buildApi } from '../api/server.ts';
import { ApiError, UnreachableError } from '../client/api-client.ts';
import { configFromEnv, parseServiceConfig } from '../config.ts';
import { BACKENDS, type BackendName, type Workload } from '../domain/workload.ts';
import { ConfigError } from '../errors.ts';
import { ExecutorService, VERSION } from '../service/executor-service.ts';
import { newSecret } from '../store/tokens.ts';
import type { Worker } from '../store/workers.ts';
import type { QueueStats } from '../store/workloads.ts';
import { WorkerAgent } from '../worker/agent.ts';
import { ProcessRuntime } from '../worker/process-runtime.ts';
import { clientFrom, type GlobalOptions, resolveToken } from './context.ts';
import { bytes, since, table } from './output.ts';

const int = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be a whole number, got '${value}'`);
  return n;
};
/** The docker runtime, prepared (task network, metadata block) before the worker registers; fails closed. */
async function dockerRuntime(
  name: string,
  options: import('../worker/docker-runtime.ts').DockerRuntimeOptions,
): Promise<import('../worker/docker-runtime.ts').DockerRuntime> {
  const [{ DockerRuntime }, { DockerOptionsError }, { TaskNetworkError }] = await Promise.all([
    import('../worker/docker-runtime.ts'),
    import('../worker/docker-task-options.ts'),
    import('../worker/task-network.ts'),
  ]);
  try {
    const runtime = new DockerRuntime(name, options);
    await runtime.prepare();
    return runtime;
  } catch (error) {
    if (error instanceof DockerOptionsError || error instanceof TaskNetworkError) throw new ConfigError(error.message);
    throw error;
  }
}

const list = (value: string) =>
  value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

function print(options: GlobalOptions, value: unknown, text: () => string): void {
  process.stdout.write(`${options.json ? JSON.stringify(value, null, 2) : text()}\n`);
}

function workloadLine(w: Workload): string {
  const end = w.state === 'failed' ? ` (${w.reason}${w.exitCode !== null ? `, exit ${w.exitCode}` : ''})` : '';
  return `${w.id}  ${w.key}  ${w.state}${end}  queue=${w.queue} attempt=${w.attempt}`;
}

export function buildCli(): Command {
  const program = new Command('airfleet')
    .description('airfleet: run Airflow tasks on pull-worker pools, Nomad and AWS Batch')
    .version(VERSION)
    .option('--api-url <url>', 'executor service URL (env AIRFLEET_API_URL)', undefined)
    .option('--token <token>', 'API token (env AIRFLEET_TOKEN; default: <data-dir>/admin.token)')
    .option('--data-dir <dir>', 'data directory of an embedded service (env AIRFLEET_DATA_DIR; default ./.airfleet)')
    .option('--json', 'print JSON instead of text')
    .showHelpAfterError();
  const globals = () => program.opts<GlobalOptions>();

  program
    .command('serve')
    .description('run the executor service (embedded PGlite database unless --database-url is given)')
    .option('--database-url <url>', 'PostgreSQL URL (env AIRFLEET_DATABASE_URL)')
    .option('--host <host>', 'address to listen on (env AIRFLEET_HOST)', undefined)
    .option('--port <port>', 'port to listen on (env AIRFLEET_PORT; default 8470)', int('--port'))
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace')
    .option(
      '--backends <a,b>',
      'backends to run (env AIRFLEET_BACKENDS; default pool,local embedded, pool with PostgreSQL)',
      list,
    )
    .option('--local-concurrency <n>', 'most tasks the local backend runs at once', int('--local-concurrency'))
    .action(
      async (opts: {
        databaseUrl?: string;
        host?: string;
        port?: number;
        logLevel?: string;
        backends?: string[];
        localConcurrency?: number;
      }) => {
        const g = globals();
        const config = parseServiceConfig({
          ...configFromEnv(),
          ...(g.dataDir ? { dataDir: g.dataDir } : {}),
          ...(opts.databaseUrl ? { databaseUrl: opts.databaseUrl } : {}),
          ...(opts.host ? { host: opts.host } : {}),
          ...(opts.port !== undefined ? { port: opts.port } : {}),
          ...(opts.logLevel ? { logLevel: opts.logLevel as 'info' } : {}),
          ...(opts.backends ? { backends: opts.backends as BackendName[] } : {}),
          ...(opts.localConcurrency !== undefined ? { localConcurrency: opts.localConcurrency } : {}),
        });
        const logger = pino({ level: config.logLevel, redact: ['req.headers.authorization', '*.token'] });
        const service = await ExecutorService.open(config, logger);
        const app = await buildApi(service, logger);
        await app.listen({ host: config.host, port: config.port });
        let closing = false;
        const close = async (signal: string) => {
          if (closing) return;
          closing = true;
          logger.info({ signal }, 'shutting down');
          await app.close();
          await service.close();
          process.exit(0);
        };
        process.on('SIGINT', () => void close('SIGINT'));
        process.on('SIGTERM', () => void close('SIGTERM'));
      },
    );

  program
    .command('worker')
    .description('run a pull worker: long-polls the service for tasks on its queues and runs them')
    .requiredOption('--queues <a,b>', 'queues to serve', list)
    .option(
      '--concurrency <n>',
      'slots: the pool slots of running tasks add up to at most this',
      int('--concurrency'),
      4,
    )
    .addOption(new Option('--runtime <runtime>', 'how tasks run').choices(['process', 'docker']).default('process'))
    .option('--name <name>', 'worker name (default: host name)', hostname())
    .option('--label <k=v...>', 'labels shown with the worker', [])
    .option(
      '--drain-timeout <seconds>',
      'on SIGINT, how long tasks may finish before they are stopped',
      int('--drain-timeout'),
      300,
    )
    .option('--kill-grace <seconds>', 'between SIGTERM and SIGKILL when stopping a task', int('--kill-grace'), 10)
    .option('--work-dir <dir>', 'working directory of process-runtime tasks', process.cwd())
    .option(
      '--secrets-dir <dir>',
      'docker runtime: a host directory secret mounts (execConfig.docker.secrets) may come from; repeatable (default: none, no secret mounts)',
      (dir: string, dirs: string[]) => [...dirs, dir],
      [] as string[],
    )
    .option(
      '--host-network',
      'docker runtime: run task containers on the host network, where they can reach the instance metadata service (default: the task network)',
    )
    .option(
      '--task-network <name>',
      'docker runtime: the bridge network task containers join, created with link-local (metadata) addresses blocked',
      'airfleet-tasks',
    )
    .action(
      async (opts: {
        secretsDir: string[];
        hostNetwork?: boolean;
        taskNetwork: string;
        queues: string[];
        concurrency: number;
        runtime: 'process' | 'docker';
        name: string;
        label: string[];
        drainTimeout: number;
        killGrace: number;
        workDir: string;
      }) => {
        const g = globals();
        const token = resolveToken(g);
        if (!token)
          throw new ConfigError('the worker needs an enrollment token: --token or AIRFLEET_TOKEN (scope enroll)');
        const logger = pino({ level: process.env.AIRFLEET_LOG_LEVEL ?? 'info' });
        const runtime =
          opts.runtime === 'docker'
            ? await dockerRuntime(opts.name, {
                secretsDirs: opts.secretsDir,
                hostNetwork: opts.hostNetwork === true,
                taskNetwork: opts.taskNetwork,
              })
            : new ProcessRuntime(opts.workDir);
        if (runtime.name === 'docker') {
          logger.info(
            { network: opts.hostNetwork ? 'host' : opts.taskNetwork, secretsDirs: opts.secretsDir },
            opts.hostNetwork
              ? 'docker runtime: tasks run on the host network (--host-network): they can reach the instance metadata service'
              : 'docker runtime: tasks run on the task network; link-local (instance metadata) addresses are blocked',
          );
        }
        const agent = new WorkerAgent({
          apiUrl: clientFrom(g).baseUrl,
          enrollToken: token,
          name: opts.name,
          queues: opts.queues,
          concurrency: opts.concurrency,
          labels: Object.fromEntries(opts.label.map((l) => l.split('=', 2) as [string, string])),
          runtime,
          logger,
          version: VERSION,
          drainTimeoutMs: opts.drainTimeout * 1000,
          killGraceMs: opts.killGrace * 1000,
        });
        await agent.start();
        let interrupts = 0;
        process.on('SIGINT', () => {
          interrupts++;
          if (interrupts === 1) {
            logger.info('SIGINT: draining (send SIGINT again or SIGTERM to stop tasks now)');
            void agent.drain().then(() => process.exit(0));
          } else void agent.shutdown().then(() => process.exit(0));
        });
        process.on('SIGTERM', () => void agent.shutdown().then(() => process.exit(0)));
      },
    );

  program
    .command('submit')
    .description('submit a workload: airfleet submit [options] -- <command> [args...]')
    .argument('<command...>', 'program and arguments')
    .option('--queue <queue>', 'queue', 'default')
    .option('--pool-slots <n>', 'slots it takes on a worker', int('--pool-slots'), 1)
    .option('--priority <n>', 'priority weight: higher runs first', int('--priority'), 1)
    .option('--key <key>', 'idempotency key (default: random)')
    .option('--image <image>', 'container image (docker runtime, Nomad, Batch)')
    .option('--env <K=V...>', 'environment variables', [])
    .addOption(new Option('--backend <backend>', 'where it runs').choices([...BACKENDS]).default('pool'))
    .option('--wait', 'wait until it ends; exit code 0 only if it succeeded')
    .action(
      async (
        command: string[],
        opts: {
          queue: string;
          poolSlots: number;
          priority: number;
          key?: string;
          image?: string;
          env: string[];
          backend: string;
          wait?: boolean;
        },
      ) => {
        const g = globals();
        const client = clientFrom(g);
        const env = Object.fromEntries(
          opts.env.map((pair) => {
            const i = pair.indexOf('=');
            if (i <= 0) throw new InvalidArgumentError(`--env wants NAME=value, got '${pair}'`);
            return [pair.slice(0, i), pair.slice(i + 1)];
          }),
        );
        let workload = await client.request<Workload>('POST', '/v1/workloads', {
          body: {
            key: opts.key ?? `cli-${Date.now()}-${newSecret().slice(0, 8)}`,
            command,
            queue: opts.queue,
            poolSlots: opts.poolSlots,
            priorityWeight: opts.priority,
            backend: opts.backend,
            env,
            ...(opts.image ? { image: opts.image } : {}),
          },
          retry: { retryForMs: 10_000 },
        });
        if (opts.wait) {
          while (!['succeeded', 'failed', 'cancelled'].includes(workload.state)) {
            await new Promise((r) => setTimeout(r, 250));
            workload = await client.request<Workload>('GET', `/v1/workloads/${workload.id}`);
          }
          if (workload.state !== 'succeeded') process.exitCode = 1;
        }
        print(g, workload, () => workloadLine(workload));
      },
    );

  program
    .command('status')
    .description('show one workload (by id or key), or the latest ones')
    .argument('[id]', 'workload id or key')
    .option('--state <state>', 'only this state')
    .option('--queue <queue>', 'only this queue')
    .option('--limit <n>', 'how many', int('--limit'), 20)
    .action(async (id: string | undefined, opts: { state?: string; queue?: string; limit: number }) => {
      const g = globals();
      const client = clientFrom(g);
      if (id) {
        const w = await client.request<Workload>('GET', `/v1/workloads/${encodeURIComponent(id)}`);
        print(g, w, () =>
          table(
            ['field', 'value'],
            [
              ['id', w.id],
              ['key', w.key],
              ['state', w.state],
              ['reason', w.reason],
              ['exit code', w.exitCode],
              ['message', w.message],
              ['queue', w.queue],
              ['backend', w.backend],
              ['attempt', w.attempt],
              ['worker', w.workerName],
              ['pool slots', w.poolSlots],
              ['priority', w.priorityWeight],
              ['command', w.command.join(' ')],
              ['created', w.createdAt],
              ['started', w.startedAt],
              ['finished', w.finishedAt],
            ],
          ),
        );
        return;
      }
      const result = await client.request<{ workloads: Workload[] }>('GET', '/v1/workloads', {
        query: { state: opts.state, queue: opts.queue, limit: opts.limit },
      });
      print(g, result, () =>
        table(
          ['id', 'key', 'state', 'reason', 'exit', 'queue', 'attempt', 'worker', 'created'],
          result.workloads.map((w) => [
            w.id,
            w.key,
            w.state,
            w.reason,
            w.exitCode,
            w.queue,
            w.attempt,
            w.workerName,
            since(w.createdAt),
          ]),
        ),
      );
    });

  program
    .command('logs')
    .description('print a workload log (stdout and stderr apart)')
    .argument('<id>', 'workload id or key')
    .addOption(new Option('--stream <stream>', 'which stream').choices(['stdout', 'stderr']).default('stdout'))
    .option('--attempt <n>', 'attempt (default: the latest)', int('--attempt'))
    .option('-f, --follow', 'keep printing until the workload ends')
    .action(async (id: string, opts: { stream: string; attempt?: number; follow?: boolean }) => {
      const client = clientFrom(globals());
      let offset = 0;
      for (;;) {
        const slice = await client.request<{ data: string; nextOffset: number; complete: boolean; state: string }>(
          'GET',
          `/v1/workloads/${encodeURIComponent(id)}/logs`,
          {
            query: { stream: opts.stream, offset, attempt: opts.attempt, waitMs: opts.follow ? 20_000 : 0 },
            timeoutMs: 40_000,
            retry: { retryForMs: opts.follow ? 60_000 : 0 },
          },
        );
        if (slice.data) process.stdout.write(Buffer.from(slice.data, 'base64'));
        offset = slice.nextOffset;
        if (!opts.follow || slice.complete) break;
      }
    });

  program
    .command('cancel')
    .description('cancel a workload')
    .argument('<id>', 'workload id or key')
    .action(async (id: string) => {
      const g = globals();
      const w = await clientFrom(g).request<Workload>('POST', `/v1/workloads/${encodeURIComponent(id)}/cancel`);
      print(g, w, () => `${workloadLine(w)}${w.state === 'cancelled' ? '' : ' (its worker is stopping it)'}`);
    });

  program
    .command('workers')
    .description('list pull workers with their state, slots and system metrics')
    .action(async () => {
      const g = globals();
      const { workers } = await clientFrom(g).request<{ workers: Worker[] }>('GET', '/v1/workers');
      print(g, { workers }, () =>
        table(
          ['name', 'state', 'queues', 'slots', 'cpu', 'memory', 'disk free', 'load', 'heartbeat', 'comment'],
          workers.map((w) => [
            w.name,
            w.state,
            w.queues.join(','),
            `${w.usedSlots}/${w.concurrency}`,
            w.metrics.cpuPercent !== undefined ? `${w.metrics.cpuPercent}%` : '-',
            w.metrics.memoryUsedBytes !== undefined
              ? `${bytes(w.metrics.memoryUsedBytes)}/${bytes(w.metrics.memoryTotalBytes)}`
              : '-',
            bytes(w.metrics.diskFreeBytes),
            w.metrics.load1?.toFixed(2),
            since(w.lastHeartbeat),
            w.maintenanceComment,
          ]),
        ),
      );
    });

  program
    .command('maintenance')
    .description('put a worker in maintenance (no new tasks; running ones finish) or take it out')
    .argument('<mode>', 'on or off')
    .option('--worker <name>', 'worker name (default: this host name)', hostname())
    .option('--comment <text>', 'why; shown with the worker')
    .option('--wait', 'with "on": wait until the worker has drained')
    .action(async (mode: string, opts: { worker: string; comment?: string; wait?: boolean }) => {
      if (mode !== 'on' && mode !== 'off') throw new InvalidArgumentError(`mode must be 'on' or 'off', got '${mode}'`);
      const g = globals();
      const client = clientFrom(g);
      let w = await client.request<Worker>('POST', `/v1/workers/${encodeURIComponent(opts.worker)}/maintenance`, {
        body: { on: mode === 'on', ...(opts.comment ? { comment: opts.comment } : {}) },
      });
      while (
        mode === 'on' &&
        opts.wait &&
        w.state !== 'maintenance_mode' &&
        w.state !== 'offline' &&
        w.state !== 'lost'
      ) {
        await new Promise((r) => setTimeout(r, 1_000));
        w = await client.request<Worker>('GET', `/v1/workers/${encodeURIComponent(opts.worker)}`);
      }
      print(g, w, () => `${w.name}: ${w.state}${w.maintenanceComment ? ` (${w.maintenanceComment})` : ''}`);
    });

  program
    .command('queues')
    .description('queue depth and running slots per queue')
    .action(async () => {
      const g = globals();
      const result = await clientFrom(g).request<{ queues: Array<QueueStats & { workers: number }> }>(
        'GET',
        '/v1/queues',
      );
      print(g, result, () =>
        table(
          ['queue', 'backend', 'queued', 'queued slots', 'pending', 'running', 'running slots', 'workers'],
          result.queues.map((q) => [
            q.queue,
            q.backend,
            q.queued,
            q.queuedSlots,
            q.pending,
            q.running,
            q.runningSlots,
            q.workers,
          ]),
        ),
      );
    });

  const token = program.command('token').description('API tokens');
  token
    .command('create')
    .description('create a token (printed once; only its hash is stored)')
    .requiredOption('--name <name>', 'what it is for')
    .option('--scopes <a,b>', 'submit, read, admin, enroll', list, ['submit', 'read'])
    .action(async (opts: { name: string; scopes: string[] }) => {
      const g = globals();
      const created = await clientFrom(g).request<{ token: string; id: string }>('POST', '/v1/tokens', { body: opts });
      print(g, created, () => created.token);
    });
  token
    .command('list')
    .description('list tokens')
    .action(async () => {
      const g = globals();
      const result = await clientFrom(g).request<{
        tokens: Array<{ id: string; name: string; scopes: string[]; createdAt: string; revokedAt: string | null }>;
      }>('GET', '/v1/tokens');
      print(g, result, () =>
        table(
          ['id', 'name', 'scopes', 'created', 'revoked'],
          result.tokens.map((t) => [t.id, t.name, t.scopes.join(','), t.createdAt, t.revokedAt]),
        ),
      );
    });
  token
    .command('revoke')
    .argument('<id>', 'token id')
    .description('revoke a token')
    .action(async (id: string) => {
      await clientFrom(globals()).request('DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
    });
  token
    .command('generate')
    .description('print a new random token to hand to `serve` through AIRFLEET_ADMIN_TOKEN or AIRFLEET_ENROLL_TOKEN')
    .action(() => {
      process.stdout.write(
        `aft_${newSecret()
          .replace(/[^A-Za-z0-9]/g, '')
          .slice(0, 18)}_${newSecret()}\n`,
      );
    });
  return program;
}

/** Runs the CLI; errors print one actionable line (no stack) and set a non-zero exit code. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildCli().parseAsync(argv);
  } catch (error) {
    if (error instanceof ApiError) {
      process.stderr.write(`airfleet: ${error.message} (HTTP ${error.status} ${error.code})\n`);
    } else if (
      error instanceof UnreachableError ||
      error instanceof ConfigError ||
      error instanceof InvalidArgumentError
    ) {
      process.stderr.write(`airfleet: ${error.message}\n`);
    } else {
      process.stderr.write(`airfleet: ${(error as Error).stack ?? String(error)}\n`);
    }
    process.exitCode = 2;
  }
}
