import type { Command } from 'commander';
import type { Workload } from '../../domain/workload.ts';
import { clientFrom, type GlobalOptions } from '../context.ts';
import { print, since, table } from '../output.ts';
import { int } from '../parse.ts';

/** `airfleet status`: one workload, or the latest ones. */
export function statusCommand(program: Command, globals: () => GlobalOptions): void {
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
        print(g.json, w, () =>
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
      print(g.json, result, () =>
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
}
