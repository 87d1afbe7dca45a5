import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { ConfigError } from '../../errors.ts';
import { createLogger } from '../../lib/logging.ts';
import { VERSION } from '../../service/executor-service.ts';
import { WorkerAgent } from '../../worker/agent.ts';
import { ProcessRuntime } from '../../worker/process-runtime.ts';
import { clientFrom, type GlobalOptions, resolveToken } from '../context.ts';
import { int, list } from '../parse.ts';

/** The docker runtime, prepared (task network, metadata block) before the worker registers; fails closed. */
async function dockerRuntime(
  name: string,
  options: import('../../worker/docker-runtime.ts').DockerRuntimeOptions,
): Promise<import('../../worker/docker-runtime.ts').DockerRuntime> {
  const [{ DockerRuntime }, { DockerOptionsError }, { TaskNetworkError }] = await Promise.all([
    import('../../worker/docker-runtime.ts'),
    import('../../worker/docker-task-options.ts'),
    import('../../worker/task-network.ts'),
  ]);
  try {
    const runtime = new DockerRuntime(name, options);
    await runtime.setUpNetwork();
    return runtime;
  } catch (error) {
    if (error instanceof DockerOptionsError || error instanceof TaskNetworkError) throw new ConfigError(error.message);
    throw error;
  }
}

/** AIRFLEET_WORKER_LABELS: `k=v,k=v` (Swarm templates such as {{.Task.ID}} are expanded before we see it). */
function envLabels(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((l) => l.trim())
    .filter(Boolean);
}

function parseLabels(pairs: string[]): Record<string, string> {
  return Object.fromEntries(
    pairs.map((l) => {
      const at = l.indexOf('=');
      if (at <= 0) throw new ConfigError(`label '${l}' is not k=v (--label or AIRFLEET_WORKER_LABELS)`);
      return [l.slice(0, at), l.slice(at + 1)];
    }),
  );
}

/** Scale-in protection of this instance in its Auto Scaling group; fails closed when the instance is unknown. */
async function scaleInProtection(group: string, logger: import('pino').Logger) {
  const { AsgScaleInProtection, instanceId } = await import('../../worker/scale-in-protection.ts');
  let id: string;
  try {
    id = await instanceId();
  } catch (error) {
    throw new ConfigError(
      `--asg-protection ${group}: cannot tell this instance's id (${(error as Error).message}); set AIRFLEET_INSTANCE_ID`,
    );
  }
  return new AsgScaleInProtection({ group, instanceId: id, logger });
}

/** `airfleet worker`: a pull worker (worker/agent.ts). */
export function workerCommand(program: Command, globals: () => GlobalOptions): void {
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
    .option(
      '--name <name>',
      'worker name (env AIRFLEET_WORKER_NAME; default: host name)',
      process.env.AIRFLEET_WORKER_NAME || hostname(),
    )
    .option(
      '--label <k=v...>',
      'labels shown with the worker; more from AIRFLEET_WORKER_LABELS (k=v,k=v: a Swarm service sets airfleet.pool and swarm.task there)',
      [],
    )
    .option(
      '--drain-timeout <seconds>',
      'on SIGINT, how long tasks may finish before they are stopped',
      int('--drain-timeout'),
      300,
    )
    .option('--kill-grace <seconds>', 'between SIGTERM and SIGKILL when stopping a task', int('--kill-grace'), 10)
    .option('--work-dir <dir>', 'working directory of process-runtime tasks', process.cwd())
    .option(
      '--state-dir <dir>',
      "the worker's own directory: identity, output spool, final reports (env AIRFLEET_WORKER_STATE_DIR; default <data-dir>/worker-<name>)",
    )
    .option(
      '--spool-max <MiB>',
      'most output of one stream of one task kept on disk while the service is unreachable',
      int('--spool-max'),
      256,
    )
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
    .option(
      '--asg-protection <group>',
      'on EC2 Auto Scaling: keep this instance protected from scale-in while tasks run (env AIRFLEET_ASG_NAME; instance id from AIRFLEET_INSTANCE_ID or the metadata service)',
      process.env.AIRFLEET_ASG_NAME,
    )
    .option(
      '--tls-cert <file>',
      'client certificate (PEM) for a service that requires one on the worker protocol (env AIRFLEET_WORKER_TLS_CERT)',
      process.env.AIRFLEET_WORKER_TLS_CERT,
    )
    .option(
      '--tls-key <file>',
      "the client certificate's key (PEM; env AIRFLEET_WORKER_TLS_KEY)",
      process.env.AIRFLEET_WORKER_TLS_KEY,
    )
    .option(
      '--tls-ca <file>',
      "CA that signed the service's certificate (PEM; env AIRFLEET_WORKER_TLS_CA; default: the system's and NODE_EXTRA_CA_CERTS)",
      process.env.AIRFLEET_WORKER_TLS_CA,
    )
    .option('--check', 'validate the options and the token, print them without the token, and exit')
    .action(
      async (opts: {
        tlsCert?: string;
        tlsKey?: string;
        tlsCa?: string;
        asgProtection?: string;
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
        stateDir?: string;
        spoolMax: number;
        check?: boolean;
      }) => {
        const g = globals();
        const token = resolveToken(g);
        if (!token)
          throw new ConfigError('the worker needs an enrollment token: --token or AIRFLEET_TOKEN (scope enroll)');
        if (Boolean(opts.tlsCert) !== Boolean(opts.tlsKey)) {
          throw new ConfigError(
            opts.tlsCert
              ? '--tls-cert needs --tls-key (AIRFLEET_WORKER_TLS_KEY): the key of the client certificate'
              : '--tls-key needs --tls-cert (AIRFLEET_WORKER_TLS_CERT): the client certificate itself',
          );
        }
        for (const [flag, file] of [
          ['--tls-cert', opts.tlsCert],
          ['--tls-key', opts.tlsKey],
          ['--tls-ca', opts.tlsCa],
        ] as const) {
          if (file && !existsSync(file)) throw new ConfigError(`${flag} ${file}: no such file`);
        }
        const tls =
          opts.tlsCert || opts.tlsCa ? { certFile: opts.tlsCert, keyFile: opts.tlsKey, caFile: opts.tlsCa } : undefined;
        if (opts.check) {
          const { check: _, ...shown } = opts;
          process.stdout.write(`${JSON.stringify({ ok: true, apiUrl: clientFrom(g).baseUrl, ...shown })}\n`);
          return;
        }
        const logger = createLogger(process.env.AIRFLEET_LOG_LEVEL ?? 'info');
        const dataDir = g.dataDir ?? process.env.AIRFLEET_DATA_DIR ?? join(process.cwd(), '.airfleet');
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
          labels: parseLabels([...envLabels(process.env.AIRFLEET_WORKER_LABELS), ...opts.label]),
          runtime,
          logger,
          version: VERSION,
          drainTimeoutMs: opts.drainTimeout * 1000,
          killGraceMs: opts.killGrace * 1000,
          stateDir: opts.stateDir ?? process.env.AIRFLEET_WORKER_STATE_DIR ?? join(dataDir, `worker-${opts.name}`),
          spoolMaxBytes: opts.spoolMax * 1024 * 1024,
          ...(opts.asgProtection ? { busyHook: await scaleInProtection(opts.asgProtection, logger) } : {}),
          ...(tls ? { tls } : {}),
        });
        // Handlers first: a signal that arrives while the worker registers must already stop it taking work.
        let interrupts = 0;
        process.on('SIGINT', () => {
          interrupts++;
          if (interrupts === 1) {
            logger.info('SIGINT: draining (send SIGINT again or SIGTERM to stop tasks now)');
            void agent.drain().then(() => process.exit(0));
          } else void agent.shutdown().then(() => process.exit(0));
        });
        process.on('SIGTERM', () => void agent.shutdown().then(() => process.exit(0)));
        // A drain the service asked for (an operator) ends the process too, as a SIGINT would.
        void agent.stopped.then(() => process.exit(0));
        await agent.start();
      },
    );
}
