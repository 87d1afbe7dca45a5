import type { Command } from 'commander';
import type { QueueStats } from '../../store/workloads.ts';
import { clientFrom, type GlobalOptions } from '../context.ts';
import { print, table } from '../output.ts';

/** `airfleet queues`: depth and running slots per queue. */
export function queuesCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('queues')
    .description('queue depth and running slots per queue')
    .action(async () => {
      const g = globals();
      const result = await clientFrom(g).request<{ queues: Array<QueueStats & { workers: number }> }>(
        'GET',
        '/v1/queues',
      );
      print(g.json, result, () =>
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
}
