import type { Command } from 'commander';
import type { Worker } from '../../store/workers.ts';
import { clientFrom, type GlobalOptions } from '../context.ts';
import { bytes, print, since, table } from '../output.ts';

/** `airfleet workers`: pull workers with their state, slots and system metrics. */
export function workersCommand(program: Command, globals: () => GlobalOptions): void {
  program
    .command('workers')
    .description('list pull workers with their state, slots and system metrics')
    .action(async () => {
      const g = globals();
      const { workers } = await clientFrom(g).request<{ workers: Worker[] }>('GET', '/v1/workers');
      print(g.json, { workers }, () =>
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
}
