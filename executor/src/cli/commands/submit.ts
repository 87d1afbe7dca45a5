import { type Command, InvalidArgumentError, Option } from 'commander';
import { BACKENDS, type Workload } from '../../domain/workload.ts';
import { newSecret } from '../../store/tokens.ts';
import { clientFrom, type GlobalOptions } from '../context.ts';
import { print, workloadLine } from '../output.ts';
import { int } from '../parse.ts';

/** `airfleet submit`: one workload from the command line, optionally waiting for its end. */
export function submitCommand(program: Command, globals: () => GlobalOptions): void {
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
        print(g.json, workload, () => workloadLine(workload));
      },
    );
}
